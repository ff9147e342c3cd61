"""The sandbox behaves like the XNAT that xnat-api.md describes, and every fault reaches a client."""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import pydicom
import pytest
import requests

from sandbox import Faults, Sandbox, Scale
from sandbox.catalog import File, Session
from sandbox.demo_data import HOSTILE_FILE_NAMES

REPO_ROOT = Path(__file__).resolve().parent.parent
TIMEOUT = 10

PROJECT_COLUMNS = ["ID", "secondary_ID", "name", "description", "pi_firstname", "pi_lastname", "URI"]
SUBJECT_COLUMNS = ["ID", "project", "label", "insert_date", "insert_user", "URI"]
SESSION_COLUMNS = ["ID", "project", "date", "xsiType", "label", "insert_date", "URI"]
SCAN_COLUMNS = ["xnat_imagescandata_id", "ID", "type", "quality", "xsiType", "note", "series_description", "URI"]
RESOURCE_COLUMNS = ["xnat_abstractresource_id", "label", "element_name", "category", "cat_id", "cat_desc",
                    "file_count", "file_size", "tags", "content", "format"]
FILE_COLUMNS = ["Name", "Size", "URI", "collection", "file_tags", "file_format", "file_content", "cat_ID", "digest"]


# --- helpers --------------------------------------------------------------------------------

def login(sb: Sandbox, user: str | None = None, password: str | None = None) -> requests.Session:
    session = requests.Session()
    session.auth = (user or sb.user, password or sb.password)
    return session


def rows(session: requests.Session, url: str, **params: str) -> list[dict[str, str]]:
    response = session.get(url, params={"format": "json", **params}, timeout=TIMEOUT)
    assert response.status_code == 200, (url, response.status_code, response.text[:200])
    result_set = response.json()["ResultSet"]
    assert result_set["totalRecords"] == str(len(result_set["Result"]))
    for row in result_set["Result"]:
        assert all(isinstance(value, str) for value in row.values()), row
    return result_set["Result"]


def server_root(sb: Sandbox) -> str:
    """The URL that server-relative URIs (/data/...) are joined to: the site with its prefix."""
    return sb.url


def md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


def demo_session(sb: Sandbox, label: str) -> Session:
    session = sb.catalog.find_session("DEMO", label)
    assert session is not None
    return session


def first_file_uri(sb: Sandbox, session: requests.Session, experiment: str = "sub-2_ses-1") -> tuple[str, File]:
    demo = demo_session(sb, experiment)
    listed = rows(session, f"{sb.url}/data/experiments/{demo.id}/scans/1/resources/DICOM/files")
    file = next(f for f in demo.scans[0].resources[0].files if f.name == listed[0]["Name"])
    return sb.url + listed[0]["URI"], file


# --- listings -------------------------------------------------------------------------------

def test_projects_listing_has_the_documented_columns(sandbox: Sandbox) -> None:
    projects = rows(login(sandbox), f"{sandbox.url}/data/projects")
    assert [row["ID"] for row in projects] == ["DEMO", "PRIVATE", "OPEN"]
    assert all(list(row) == PROJECT_COLUMNS for row in projects)
    demo = projects[0]
    assert demo["name"] == "Demo project" and demo["description"] and demo["pi_lastname"]
    assert demo["URI"] == "/data/projects/DEMO"


def test_every_listing_route_answers_with_its_columns(sandbox: Sandbox) -> None:
    client = login(sandbox)
    base = f"{sandbox.url}/data"
    session = demo_session(sandbox, "sub-10_ses-1")
    routes = {
        f"{base}/projects/DEMO/subjects": SUBJECT_COLUMNS,
        f"{base}/projects/DEMO/subjects/sub-10/experiments": SESSION_COLUMNS,
        f"{base}/projects/DEMO/experiments": SESSION_COLUMNS + ["subject_ID"],
        f"{base}/projects/DEMO/subjects/sub-10/experiments/sub-10_ses-1/scans": SCAN_COLUMNS,
        f"{base}/experiments/{session.id}/scans": SCAN_COLUMNS,
        f"{base}/experiments/{session.id}/scans/1/resources": RESOURCE_COLUMNS,
        f"{base}/experiments/{session.id}/scans/1/resources/DICOM/files": FILE_COLUMNS,
        f"{base}/experiments/{session.id}/scans/ALL/files": FILE_COLUMNS,
    }
    for url, columns in routes.items():
        listed = rows(client, url)
        assert listed, url
        assert all(list(row) == columns for row in listed), url
        uris = [row["URI"] for row in listed if "URI" in row]
        assert all(uri.startswith("/data/") for uri in uris), url

    subjects = rows(client, f"{base}/projects/DEMO/subjects")
    # Stored in upload order, which is neither natural nor plain string order of the labels.
    assert [row["label"] for row in subjects] == ["sub-10", "sub-2", "sub-3"]
    assert subjects[0]["URI"] == f"/data/subjects/{subjects[0]['ID']}"
    scans = rows(client, f"{base}/experiments/{session.id}/scans")
    assert [row["ID"] for row in scans] == ["1", "11", "2", "3"]
    assert scans[0]["type"] == "T1" and scans[0]["series_description"] == "t1_mprage_sag"
    assert {row["quality"] for row in scans} == {"usable", "questionable"}
    assert scans[0]["URI"] == f"/data/experiments/{session.id}/scans/1"


def test_single_objects_answer_as_items(sandbox: Sandbox) -> None:
    client = login(sandbox)
    session = demo_session(sandbox, "sub-3_ses-1")
    for url in (f"{sandbox.url}/data/projects/DEMO", f"{sandbox.url}/data/projects/DEMO/subjects/sub-3",
                f"{sandbox.url}/data/experiments/{session.id}",
                f"{sandbox.url}/data/experiments/{session.id}/scans/2"):
        response = client.get(url, params={"format": "json"}, timeout=TIMEOUT)
        assert response.status_code == 200, url
        assert response.json()["items"][0]["data_fields"]["ID"]
    subject_uri = rows(client, f"{sandbox.url}/data/projects/DEMO/subjects")[0]["URI"]
    assert client.get(sandbox.url + subject_uri, params={"format": "json"}, timeout=TIMEOUT).status_code == 200


def test_resources_report_file_count_and_size(sandbox: Sandbox) -> None:
    session = demo_session(sandbox, "sub-2_ses-1")
    listed = rows(login(sandbox), f"{sandbox.url}/data/experiments/{session.id}/scans/1/resources")
    by_label = {row["label"]: row for row in listed}
    dicom = session.scans[0].find_resource("DICOM")
    assert by_label["DICOM"]["file_count"] == str(len(dicom.files))
    assert by_label["DICOM"]["file_size"] == str(sum(f.size for f in dicom.files))
    assert by_label["DICOM"]["cat_id"] == dicom.cat_id
    assert "SNAPSHOTS" in by_label
    localizer = rows(login(sandbox), f"{sandbox.url}/data/experiments/{session.id}/scans/4/resources")
    assert [row["label"] for row in localizer] == ["SNAPSHOTS"]


def test_subjects_and_sessions_answer_to_label_or_id(sandbox: Sandbox) -> None:
    client = login(sandbox)
    subject = sandbox.catalog.find_subject("DEMO", "sub-10")
    session = subject.sessions[1]
    expected = rows(client, f"{sandbox.url}/data/experiments/{session.id}/scans")
    for subject_key in (subject.label, subject.id):
        for session_key in (session.label, session.id):
            url = (f"{sandbox.url}/data/projects/DEMO/subjects/{subject_key}"
                   f"/experiments/{session_key}/scans")
            assert rows(client, url) == expected
    assert rows(client, f"{sandbox.url}/data/projects/DEMO/experiments/{session.label}/scans") == expected
    # /data/experiments/{E} takes the accession ID only.
    assert client.get(f"{sandbox.url}/data/experiments/{session.label}/scans",
                      params={"format": "json"}, timeout=TIMEOUT).status_code == 404


def test_scan_slot_takes_all_a_list_or_a_type(sandbox: Sandbox) -> None:
    client = login(sandbox)
    session = demo_session(sandbox, "sub-10_ses-1")
    base = f"{sandbox.url}/data/experiments/{session.id}/scans"

    def scan_ids(slot: str) -> set[str]:
        listed = rows(client, f"{base}/{slot}/resources/DICOM/files")
        return {re.search(r"/scans/([^/]+)/", row["URI"]).group(1) for row in listed}

    assert scan_ids("ALL") == {"1", "11", "2", "3"}
    assert scan_ids("1,3") == {"1", "3"}
    assert scan_ids("func_rest") == {"11", "3"}
    all_files = rows(client, f"{base}/ALL/files")
    assert {row["collection"] for row in all_files} == {"DICOM", "SNAPSHOTS"}
    dicom_files = rows(client, f"{base}/ALL/resources/DICOM/files")
    assert len(dicom_files) == sum(len(scan.find_resource("DICOM").files) for scan in session.scans)
    assert client.get(f"{base}/99/files", params={"format": "json"}, timeout=TIMEOUT).status_code == 404


def test_resource_is_addressed_by_label_or_cat_id(sandbox: Sandbox) -> None:
    client = login(sandbox)
    session = demo_session(sandbox, "sub-2_ses-1")
    resource = session.scans[0].find_resource("DICOM")
    base = f"{sandbox.url}/data/experiments/{session.id}/scans/1/resources"
    assert rows(client, f"{base}/DICOM/files") == rows(client, f"{base}/{resource.cat_id}/files")
    name = resource.files[0].name
    assert client.get(f"{base}/DICOM/files/{name}", timeout=TIMEOUT).content == resource.files[0].data()


def test_every_listed_file_serves_bytes_matching_its_digest(sandbox: Sandbox) -> None:
    client = login(sandbox)
    project = sandbox.catalog.projects["DEMO"]
    for subject in project.subjects:
        for session in subject.sessions:
            listed = rows(client, f"{sandbox.url}/data/experiments/{session.id}/scans/ALL/files")
            expected = {(scan.id, file.name): file for scan in session.scans
                        for resource in scan.resources for file in resource.files}
            assert len(listed) == len(expected)
            for row in listed:
                body = client.get(server_root(sandbox) + row["URI"], timeout=TIMEOUT).content
                scan_id = re.search(r"/scans/([^/]+)/", row["URI"]).group(1)
                file = expected[(scan_id, row["Name"])]
                assert row["digest"] == md5(body) == file.md5
                assert row["Size"] == str(len(body)) == str(file.size)


def test_a_resource_may_hold_sub_folders(sandbox: Sandbox) -> None:
    session = demo_session(sandbox, "sub-3_ses-1")
    listed = rows(login(sandbox), f"{sandbox.url}/data/experiments/{session.id}/scans/1/resources/DICOM/files")
    nested = [row for row in listed if row["Name"].startswith("secondary/")]
    assert nested and all(row["URI"].endswith("/files/" + row["Name"]) for row in nested)
    assert login(sandbox).get(sandbox.url + nested[0]["URI"], timeout=TIMEOUT).status_code == 200


def test_file_download_headers(sandbox: Sandbox) -> None:
    client = login(sandbox)
    uri, file = first_file_uri(sandbox, client)
    response = client.get(uri, timeout=TIMEOUT)
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "application/octet-stream"
    assert response.headers["Content-Length"] == str(file.size)
    assert "Last-Modified" in response.headers and "ETag" not in response.headers
    assert response.headers["Content-Disposition"].startswith("attachment; filename=")
    head = client.head(uri, timeout=TIMEOUT)
    assert head.status_code == 200 and head.headers["Content-Length"] == str(file.size) and not head.content


def test_range_requests_get_206(sandbox: Sandbox) -> None:
    client = login(sandbox)
    uri, file = first_file_uri(sandbox, client)
    data = file.data()
    tail = client.get(uri, headers={"Range": "bytes=100-"}, timeout=TIMEOUT)
    assert tail.status_code == 206
    assert tail.headers["Content-Range"] == f"bytes 100-{file.size - 1}/{file.size}"
    assert tail.content == data[100:]
    middle = client.get(uri, headers={"Range": "bytes=10-19"}, timeout=TIMEOUT)
    assert middle.status_code == 206 and middle.content == data[10:20]
    beyond = client.get(uri, headers={"Range": f"bytes={file.size}-"}, timeout=TIMEOUT)
    assert beyond.status_code == 416


def test_zip_of_a_resource_streams_the_documented_layout(sandbox: Sandbox) -> None:
    client = login(sandbox)
    session = demo_session(sandbox, "sub-3_ses-1")
    response = client.get(f"{sandbox.url}/data/experiments/{session.id}/scans/ALL/resources/DICOM/files",
                          params={"format": "zip"}, timeout=TIMEOUT)
    assert response.status_code == 200
    assert "Content-Length" not in response.headers
    archive = zipfile.ZipFile(io.BytesIO(response.content))
    assert archive.testzip() is None
    expected = {f"sub-3_ses-1/scans/{scan.id}-{scan.type}/resources/DICOM/files/{file.name}": file
                for scan in session.scans for file in scan.find_resource("DICOM").files}
    assert set(archive.namelist()) == set(expected)
    for name, file in expected.items():
        info = archive.getinfo(name)
        assert info.compress_type == zipfile.ZIP_STORED
        assert archive.read(name) == file.data()
    single = client.get(f"{sandbox.url}/data/experiments/{session.id}/scans/2/resources/DICOM/files",
                        params={"format": "zip"}, timeout=TIMEOUT)
    assert all(name.startswith("sub-3_ses-1/scans/2-T2/") for name in zipfile.ZipFile(io.BytesIO(single.content)).namelist())


# --- the experiment search --------------------------------------------------------------------

def test_columns_with_scan_fields_give_one_row_per_scan(sandbox: Sandbox) -> None:
    columns = "ID,label,subject_label,xnat:imagescandata/ID,xnat:imagescandata/type,xnat:imagescandata/quality"
    listed = rows(login(sandbox), f"{sandbox.url}/data/experiments", project="DEMO",
                  xsiType="xnat:imageSessionData", columns=columns)
    project = sandbox.catalog.projects["DEMO"]
    expected = sorted((subject.label, session.label, scan.id, scan.type)
                      for subject in project.subjects for session in subject.sessions for scan in session.scans)
    assert sorted((row["subject_label"], row["label"], row["xnat:imagescandata/id"],
                   row["xnat:imagescandata/type"]) for row in listed) == expected
    assert list(listed[0]) == ["ID", "label", "subject_label", "xnat:imagescandata/id", "xnat:imagescandata/type",
                               "xnat:imagescandata/quality", "URI"]


def test_a_session_without_scans_still_gives_one_row(sandbox: Sandbox) -> None:
    subject = sandbox.catalog.find_subject("DEMO", "sub-2")
    subject.sessions.append(Session(id="XNAT_E09999", label="sub-2_ses-empty", date="2024-05-05"))
    listed = rows(login(sandbox), f"{sandbox.url}/data/experiments", project="DEMO",
                  columns="ID,label,xnat:imagescandata/id")
    empty = [row for row in listed if row["label"] == "sub-2_ses-empty"]
    assert empty == [{"ID": "XNAT_E09999", "label": "sub-2_ses-empty", "xnat:imagescandata/id": "",
                      "URI": "/data/experiments/XNAT_E09999"}]


def test_without_columns_one_row_per_session(sandbox: Sandbox) -> None:
    listed = rows(login(sandbox), f"{sandbox.url}/data/experiments", project="DEMO",
                  xsiType="xnat:imageSessionData")
    assert len(listed) == len(sandbox.catalog.sessions("DEMO"))
    assert all(list(row) == SESSION_COLUMNS + ["subject_ID"] for row in listed)
    assert rows(login(sandbox), f"{sandbox.url}/data/experiments", project="DEMO", xsiType="xnat:petSessionData") == []


def test_ignore_columns_answers_one_row_per_session(make_sandbox: Any) -> None:
    sb = make_sandbox(ignore_columns=True)
    listed = rows(login(sb), f"{sb.url}/data/experiments", project="DEMO",
                  columns="ID,label,xnat:imagescandata/id")
    assert len(listed) == len(sb.catalog.sessions("DEMO"))
    assert "xnat:imagescandata/id" not in listed[0]


def test_project_listings_honour_offset_and_limit(sandbox: Sandbox) -> None:
    client = login(sandbox)
    everyone = rows(client, f"{sandbox.url}/data/projects/DEMO/subjects")
    assert rows(client, f"{sandbox.url}/data/projects/DEMO/subjects", offset="1", limit="1") == everyone[1:2]
    sessions = rows(client, f"{sandbox.url}/data/projects/DEMO/experiments")
    assert rows(client, f"{sandbox.url}/data/projects/DEMO/experiments", offset="2") == sessions[2:]


# --- authentication and access --------------------------------------------------------------

def test_missing_or_wrong_credentials_get_401(sandbox: Sandbox) -> None:
    url = f"{sandbox.url}/data/projects?format=json"
    for auth in (None, (sandbox.user, "wrong"), ("nobody", "x"), (sandbox.alias, "wrong")):
        response = requests.get(url, auth=auth, timeout=TIMEOUT)
        assert response.status_code == 401, auth
        assert response.headers["WWW-Authenticate"] == 'Basic realm="XNAT"'
        assert "Login attempt failed. Please try again." in response.text
    browser = requests.get(url, headers={"User-Agent": "Mozilla/5.0"}, allow_redirects=False, timeout=TIMEOUT)
    assert browser.status_code == 302
    assert browser.headers["Location"] == "/app/template/Login.vm"
    assert requests.get(sandbox.url + "/app/template/Login.vm", timeout=TIMEOUT).status_code == 200


def test_alias_token_works_like_a_password(sandbox: Sandbox) -> None:
    assert re.fullmatch(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", sandbox.alias)
    listed = rows(login(sandbox, sandbox.alias, sandbox.alias_secret), f"{sandbox.url}/data/projects")
    assert "DEMO" in {row["ID"] for row in listed}


def test_private_protected_and_public_projects(sandbox: Sandbox) -> None:
    outsider = login(sandbox, sandbox.outsider, sandbox.outsider_password)
    base = f"{sandbox.url}/data/projects"
    assert [row["ID"] for row in rows(outsider, base)] == ["DEMO", "OPEN"]

    def status(url: str) -> int:
        return outsider.get(url, params={"format": "json"}, timeout=TIMEOUT).status_code

    assert status(f"{base}/DEMO") == 200
    assert status(f"{base}/DEMO/subjects") == 403
    assert status(f"{base}/DEMO/experiments") == 403
    demo_session_id = demo_session(sandbox, "sub-2_ses-1").id
    assert status(f"{sandbox.url}/data/experiments/{demo_session_id}/scans") == 403
    assert status(f"{base}/PRIVATE") == 404
    assert status(f"{base}/PRIVATE/subjects") == 404
    private_session = sandbox.catalog.sessions("PRIVATE")[0]
    assert status(f"{sandbox.url}/data/experiments/{private_session.id}/scans") == 404
    assert rows(outsider, f"{base}/OPEN/subjects")
    open_session = sandbox.catalog.sessions("OPEN")[0]
    assert rows(outsider, f"{sandbox.url}/data/experiments/{open_session.id}/scans/ALL/files")
    outsider_projects = {row["project"] for row in rows(outsider, f"{sandbox.url}/data/experiments")}
    assert outsider_projects == {"OPEN"}
    # The demo user sees the private project.
    assert "PRIVATE" in {row["ID"] for row in rows(login(sandbox), base)}


def test_missing_things_get_404(sandbox: Sandbox) -> None:
    client = login(sandbox)
    session = demo_session(sandbox, "sub-2_ses-1")
    for path in ("/data/projects/NOPE", "/data/projects/DEMO/subjects/sub-99",
                 "/data/projects/DEMO/subjects/sub-2/experiments/sub-2_ses-9",
                 f"/data/experiments/{session.id}/scans/77",
                 f"/data/experiments/{session.id}/scans/1/resources/NIFTI/files",
                 f"/data/experiments/{session.id}/scans/1/resources/DICOM/files/nothing.dcm",
                 "/data/nothing", "/data/version", "/elsewhere"):
        response = client.get(sandbox.url + path, params={"format": "json"}, timeout=TIMEOUT)
        assert response.status_code == 404, path
    body = client.get(f"{sandbox.url}/data/projects/NOPE", timeout=TIMEOUT).text
    assert re.search(r"<h3>.+</h3>", body)


def test_only_get_and_head_except_for_login_routes(sandbox: Sandbox) -> None:
    client = login(sandbox)
    assert client.post(f"{sandbox.url}/data/projects", timeout=TIMEOUT).status_code == 405
    assert client.delete(f"{sandbox.url}/data/projects/DEMO", timeout=TIMEOUT).status_code == 405
    assert client.put(f"{sandbox.url}/data/projects/DEMO/subjects/x", timeout=TIMEOUT).status_code == 405


def test_jsession_cookie_then_logout(sandbox: Sandbox) -> None:
    first = requests.get(f"{sandbox.url}/data/JSESSION", auth=(sandbox.user, sandbox.password), timeout=TIMEOUT)
    session_id = first.text
    assert re.fullmatch(r"[0-9A-F]{32}", session_id)
    assert first.cookies["JSESSIONID"] == session_id
    started, timeout = first.cookies["SESSION_EXPIRATION_TIME"].strip('"').split(",")
    assert started.isdigit() and timeout == "900000"

    cookie_only = requests.Session()
    cookie_only.cookies.set("JSESSIONID", session_id)
    assert rows(cookie_only, f"{sandbox.url}/data/projects")
    assert cookie_only.get(f"{sandbox.url}/data/JSESSION", timeout=TIMEOUT).text == session_id
    assert cookie_only.get(f"{sandbox.url}/data/auth", timeout=TIMEOUT).text == "User 'demo' is logged in"
    assert cookie_only.delete(f"{sandbox.url}/data/JSESSION", timeout=TIMEOUT).status_code == 200
    assert cookie_only.get(f"{sandbox.url}/data/projects", timeout=TIMEOUT).status_code == 401


def test_form_login_at_services_auth(sandbox: Sandbox) -> None:
    url = f"{sandbox.url}/data/services/auth"
    good = requests.put(url, data={"username": sandbox.user, "password": sandbox.password}, timeout=TIMEOUT)
    assert good.status_code == 200 and good.cookies["JSESSIONID"] == good.text
    bad = requests.put(url, data={"username": sandbox.user, "password": "nope"}, timeout=TIMEOUT)
    assert bad.status_code == 401 and "<h3>" in bad.text


def test_build_info_says_1_8(sandbox: Sandbox) -> None:
    info = login(sandbox).get(f"{sandbox.url}/xapi/siteConfig/buildInfo", timeout=TIMEOUT).json()
    assert info["version"].startswith("1.8")


@pytest.mark.parametrize("credentials", ["password", "alias"])
def test_xnatpy_connects_lists_and_logs_out(make_sandbox: Any, credentials: str) -> None:
    xnat = pytest.importorskip("xnat")
    sb = make_sandbox(prefix="/xnat")
    user, password = (sb.user, sb.password) if credentials == "password" else (sb.alias, sb.alias_secret)
    connection = xnat.connect(sb.url, user=user, password=password, no_parse_model=True, loglevel="ERROR")
    try:
        listed = connection.get("/data/projects", format="json").json()["ResultSet"]["Result"]
        assert "DEMO" in {row["ID"] for row in listed}
    finally:
        connection.disconnect()
    assert [entry.method for entry in sb.log if entry.path == "/xnat/data/JSESSION"][-1] == "DELETE"


def test_prefix_serves_under_the_site_path(make_sandbox: Any) -> None:
    sb = make_sandbox(prefix="/xnat/")
    assert sb.url.endswith("/xnat")
    client = login(sb)
    assert client.get(sb.url + "/", timeout=TIMEOUT).status_code == 200
    uri, file = first_file_uri(sb, client)
    assert "/xnat/data/experiments/" in uri
    assert client.get(uri, timeout=TIMEOUT).content == file.data()
    root = f"http://{sb.host_port}"
    assert client.get(root + "/data/projects", timeout=TIMEOUT).status_code == 404


def test_tls_with_a_private_ca(make_sandbox: Any, tmp_path: Path) -> None:
    trustme = pytest.importorskip("trustme")
    authority = trustme.CA()
    certificate = authority.issue_cert("127.0.0.1")
    cert_file, key_file, ca_file = tmp_path / "cert.pem", tmp_path / "key.pem", tmp_path / "ca.pem"
    certificate.cert_chain_pems[0].write_to_path(cert_file)
    for blob in certificate.cert_chain_pems[1:]:
        blob.write_to_path(cert_file, append=True)
    certificate.private_key_pem.write_to_path(key_file)
    authority.cert_pem.write_to_path(ca_file)

    sb = make_sandbox(tls=(str(cert_file), str(key_file)))
    assert sb.url.startswith("https://")
    client = login(sb)
    response = client.get(f"{sb.url}/data/projects", params={"format": "json"}, verify=str(ca_file), timeout=TIMEOUT)
    assert response.status_code == 200
    with pytest.raises(requests.exceptions.SSLError):
        requests.get(f"{sb.url}/data/projects", auth=(sb.user, sb.password), timeout=TIMEOUT)


# --- scale ----------------------------------------------------------------------------------

@pytest.mark.parametrize("subjects, sessions, scans", [(200, 1, 1), (100, 2, 2), (200, 2, 10)])
def test_scaled_project_lists_right(make_sandbox: Any, subjects: int, sessions: int, scans: int) -> None:
    sb = make_sandbox(scale=Scale(subjects=subjects, sessions_per_subject=sessions, scans_per_session=scans,
                                  files_per_scan=2, file_size=4096))
    client = login(sb)
    subject_rows = rows(client, f"{sb.url}/data/projects/BIG/subjects")
    assert len(subject_rows) == subjects
    assert {row["label"] for row in subject_rows} == {f"sub-{n}" for n in range(1, subjects + 1)}
    scan_rows = rows(client, f"{sb.url}/data/experiments", project="BIG",
                     columns="ID,label,subject_label,xnat:imagescandata/id,xnat:imagescandata/type")
    assert len(scan_rows) == subjects * sessions * scans
    assert scan_rows[0]["label"] == "sub-1_ses-1" and scan_rows[0]["xnat:imagescandata/type"] == "T1"
    last_session = sb.catalog.find_session("BIG", f"sub-{subjects}_ses-{sessions}")
    listed = rows(client, f"{sb.url}/data/experiments/{last_session.id}/scans/ALL/files")
    assert len(listed) == scans * 2
    body = client.get(sb.url + listed[-1]["URI"], timeout=TIMEOUT).content
    assert len(body) == 4096 and md5(body) == listed[-1]["digest"]
    assert "DEMO" in sb.catalog.projects


def archived_vendor_series() -> dict[tuple[str, str, str], dict[str, bytes]]:
    """(subject, session, series folder) -> {file name: bytes}, read straight from the archive."""
    import lzma
    import tarfile
    series: dict[tuple[str, str, str], dict[str, bytes]] = {}
    unpacked = lzma.decompress((REPO_ROOT / "tests" / "data" / "vendor_dicom.tar.xz").read_bytes())
    with tarfile.open(fileobj=io.BytesIO(unpacked)) as archive:
        for member in archive:
            if member.isfile():
                _, subject, session, folder, name = member.name.split("/")
                series.setdefault((subject, session, folder), {})[name] = archive.extractfile(member).read()
    return series


def test_the_vendor_project_serves_each_archived_series_as_a_scan_named_by_its_dicom(make_sandbox: Any) -> None:
    sb = make_sandbox(vendor=True)
    client = login(sb)
    expected: dict[tuple[str, str, str], tuple[str, dict[str, bytes]]] = {}  # (subject, session, scan ID)
    for (subject, session, _), files in archived_vendor_series().items():
        header = pydicom.dcmread(io.BytesIO(next(iter(files.values()))), stop_before_pixels=True)
        expected[(subject, session, str(header.SeriesNumber))] = (header.SeriesDescription.strip(), files)
    assert {subject for subject, _, _ in expected} == {"siemens", "ge", "philips"}
    assert {row["label"] for row in rows(client, f"{sb.url}/data/projects/VENDOR/subjects")} == \
        {"siemens", "ge", "philips"}
    served: set[tuple[str, str, str]] = set()
    for row in rows(client, f"{sb.url}/data/projects/VENDOR/experiments", columns="ID,label,subject_label"):
        for scan in rows(client, f"{sb.url}/data/experiments/{row['ID']}/scans"):
            key = (row["subject_label"], row["label"], scan["ID"])
            description, files = expected[key]
            assert scan["type"] == scan["series_description"] == description
            listed = rows(client, f"{sb.url}/data/experiments/{row['ID']}/scans/{scan['ID']}/resources/DICOM/files")
            assert {file["Name"]: file["digest"] for file in listed} == \
                {name: md5(data) for name, data in files.items()}
            body = client.get(sb.url + listed[0]["URI"], timeout=TIMEOUT).content
            assert body == files[listed[0]["Name"]]
            served.add(key)
    assert served == set(expected)
    assert "VENDOR" not in Sandbox().catalog.projects  # only when asked


def test_a_dicom_tree_serves_each_top_folder_as_a_project_and_each_series_folder_as_a_scan(
        make_sandbox: Any, tmp_path: Path) -> None:
    archived = archived_vendor_series()
    chosen = [key for key in archived if key[1] in ("siemens_gre", "ge_1")]
    for subject, session, folder in chosen:  # LAB/<subject>/<session>/<series folder>/<file>
        target = tmp_path / "LAB" / subject / session / folder
        target.mkdir(parents=True)
        for name, data in archived[(subject, session, folder)].items():
            (target / name).write_bytes(data)
    (tmp_path / "OTHER" / "s1" / "s1_a" / "x").mkdir(parents=True)  # a project with an empty series folder
    sb = make_sandbox(dicom_tree=tmp_path)
    client = login(sb)
    assert {"LAB", "OTHER", "DEMO"} <= set(sb.catalog.projects) and "VENDOR" not in sb.catalog.projects
    served = {}
    for row in rows(client, f"{sb.url}/data/projects/LAB/experiments", columns="ID,label,subject_label"):
        for scan in rows(client, f"{sb.url}/data/experiments/{row['ID']}/scans"):
            listed = rows(client, f"{sb.url}/data/experiments/{row['ID']}/scans/{scan['ID']}/resources/DICOM/files")
            served[(row["subject_label"], row["label"], scan["ID"], scan["type"])] = \
                {file["Name"]: file["digest"] for file in listed}
    expected = {}
    for subject, session, folder in chosen:
        files = archived[(subject, session, folder)]
        header = pydicom.dcmread(io.BytesIO(next(iter(files.values()))), stop_before_pixels=True)
        expected[(subject, session, str(header.SeriesNumber), header.SeriesDescription.strip())] = \
            {name: md5(data) for name, data in files.items()}
    assert served == expected


def test_the_command_line_refuses_a_dicom_tree_that_is_not_a_folder(tmp_path: Path) -> None:
    result = subprocess.run([sys.executable, "-m", "sandbox", "--dicom-tree", str(tmp_path / "nowhere")],
                            cwd=REPO_ROOT, capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 2 and "--dicom-tree: no such folder or .tar.xz archive" in result.stderr
    assert "Traceback" not in result.stderr


def test_generated_files_are_distinct_and_consistent() -> None:
    files = [File.generated(f"f{n}", 300_000, n) for n in range(1, 6)]
    assert len({file.md5 for file in files}) == len(files)
    big = File.generated("big", 3 * 1024 * 1024 + 7, 42)
    whole = big.data()
    assert len(whole) == big.size and md5(whole) == big.md5
    assert b"".join(bytes(chunk) for chunk in big.chunks(1000, 2_000_000)) == whole[1000:2_000_000]


# --- faults ---------------------------------------------------------------------------------

def test_latency_and_pace_still_deliver_the_bytes(sandbox: Sandbox) -> None:
    client = login(sandbox)
    uri, file = first_file_uri(sandbox, client)
    sandbox.faults = Faults(latency=0.01, pace=4 * 1024 * 1024)
    assert md5(client.get(uri, timeout=TIMEOUT).content) == file.md5


def test_status_count_fails_the_first_requests_only(sandbox: Sandbox) -> None:
    client = login(sandbox)
    uri, _ = first_file_uri(sandbox, client)
    sandbox.faults.status = 503
    sandbox.faults.status_count = 2
    assert [client.get(uri, timeout=TIMEOUT).status_code for _ in range(3)] == [503, 503, 200]
    # Listings are not file requests, so the default `match` spares them.
    sandbox.faults.status_count = 1
    rows(client, f"{sandbox.url}/data/projects")
    sandbox.faults.match = "/data/projects"
    assert client.get(f"{sandbox.url}/data/projects", timeout=TIMEOUT).status_code == 503


def test_status_rate_is_seeded(sandbox: Sandbox) -> None:
    client = login(sandbox)
    uri, _ = first_file_uri(sandbox, client)

    def pattern() -> list[int]:
        sandbox.faults = Faults(status=502, status_rate=0.5, status_seed=7)
        return [client.get(uri, timeout=TIMEOUT).status_code for _ in range(12)]

    first = pattern()
    assert set(first) == {200, 502}
    assert pattern() == first


def test_throttle_sends_retry_after(sandbox: Sandbox) -> None:
    client = login(sandbox)
    uri, _ = first_file_uri(sandbox, client)
    sandbox.faults = Faults(throttle_count=1, retry_after=0)
    throttled = client.get(uri, timeout=TIMEOUT)
    assert throttled.status_code == 429 and throttled.headers["Retry-After"] == "0"
    assert client.get(uri, timeout=TIMEOUT).status_code == 200


def test_reset_breaks_the_download(sandbox: Sandbox) -> None:
    client = login(sandbox)
    uri, file = first_file_uri(sandbox, client)
    sandbox.faults.reset_count = 1
    with pytest.raises((requests.exceptions.ConnectionError, requests.exceptions.ChunkedEncodingError)):
        client.get(uri, timeout=TIMEOUT)
    assert md5(client.get(uri, timeout=TIMEOUT).content) == file.md5
    reset_entry = [entry for entry in sandbox.file_requests()][-2]
    assert reset_entry.bytes < file.size


def test_short_body_is_noticed(sandbox: Sandbox) -> None:
    client = login(sandbox)
    uri, file = first_file_uri(sandbox, client)
    sandbox.faults.short_count = 1
    try:
        body = client.get(uri, timeout=TIMEOUT).content
    except (requests.exceptions.ConnectionError, requests.exceptions.ChunkedEncodingError):
        body = None
    assert body is None or len(body) < file.size
    assert sandbox.file_requests()[-1].bytes == file.size // 2
    assert md5(client.get(uri, timeout=TIMEOUT).content) == file.md5


def test_corrupt_keeps_the_length_but_not_the_bytes(sandbox: Sandbox) -> None:
    client = login(sandbox)
    uri, file = first_file_uri(sandbox, client)
    sandbox.faults.corrupt_count = 1
    bad = client.get(uri, timeout=TIMEOUT).content
    assert len(bad) == file.size and md5(bad) != file.md5
    assert md5(client.get(uri, timeout=TIMEOUT).content) == file.md5


def test_stall_makes_a_read_time_out(sandbox: Sandbox) -> None:
    client = login(sandbox)
    uri, file = first_file_uri(sandbox, client)
    sandbox.faults.stall_seconds = 5
    sandbox.faults.stall_count = 1
    with pytest.raises((requests.exceptions.ConnectionError, requests.exceptions.ChunkedEncodingError)):
        client.get(uri, timeout=0.3).content
    # Stopping the sandbox (in the fixture) ends the stalled answer at once.


def test_expiry_ends_cookie_sessions_once(sandbox: Sandbox) -> None:
    session_id = requests.get(f"{sandbox.url}/data/JSESSION", auth=(sandbox.user, sandbox.password),
                              timeout=TIMEOUT).text
    cookie_only = requests.Session()
    cookie_only.cookies.set("JSESSIONID", session_id)
    sandbox.faults.expire_after = 2
    statuses = [cookie_only.get(f"{sandbox.url}/data/projects", timeout=TIMEOUT).status_code for _ in range(3)]
    assert statuses == [200, 200, 401]
    relogin = login(sandbox)
    assert rows(relogin, f"{sandbox.url}/data/projects")
    fresh = relogin.cookies["JSESSIONID"]
    assert fresh != session_id
    cookie_only.cookies.set("JSESSIONID", fresh)
    assert [cookie_only.get(f"{sandbox.url}/data/projects", timeout=TIMEOUT).status_code
            for _ in range(3)] == [200, 200, 200]


@pytest.mark.parametrize("kind", ["html", "empty", "truncated", "nokeys"])
def test_spoiled_listings(sandbox: Sandbox, kind: str) -> None:
    client = login(sandbox)
    sandbox.faults = Faults(listing=kind, listing_count=1, listing_match="/subjects")
    url = f"{sandbox.url}/data/projects/DEMO/subjects"
    rows(client, f"{sandbox.url}/data/projects")  # not matched, not spent
    spoiled = client.get(url, params={"format": "json"}, timeout=TIMEOUT)
    assert spoiled.status_code == 200
    if kind == "html":
        assert spoiled.text.lstrip().startswith("<!DOCTYPE html>") and "login" in spoiled.text.lower()
    elif kind == "empty":
        assert spoiled.content == b""
    elif kind == "truncated":
        with pytest.raises(ValueError):
            json.loads(spoiled.text)
    else:
        assert "ResultSet" not in spoiled.json()
    assert len(rows(client, url)) == 3


def test_redirect_to_the_login_page(sandbox: Sandbox) -> None:
    client = login(sandbox)
    uri, _ = first_file_uri(sandbox, client)
    sandbox.faults.redirect_count = 1
    redirected = client.get(uri, allow_redirects=False, timeout=TIMEOUT)
    assert redirected.status_code == 302
    assert redirected.headers["Location"] == "/app/template/Login.vm"
    followed = client.get(uri, timeout=TIMEOUT)
    assert followed.status_code == 200 and followed.headers["Content-Type"] == "application/octet-stream"


def test_missing_file_that_the_listing_names(sandbox: Sandbox) -> None:
    client = login(sandbox)
    uri, _ = first_file_uri(sandbox, client)
    sandbox.faults.missing_count = 1
    assert client.get(uri, timeout=TIMEOUT).status_code == 404
    assert client.get(uri, timeout=TIMEOUT).status_code == 200


def test_wrong_size_in_files_listings(sandbox: Sandbox) -> None:
    client = login(sandbox)
    session = demo_session(sandbox, "sub-2_ses-1")
    url = f"{sandbox.url}/data/experiments/{session.id}/scans/1/resources/DICOM/files"
    honest = rows(client, url)
    sandbox.faults.wrong_size = True
    assert [int(row["Size"]) for row in rows(client, url)] == [int(row["Size"]) + 1 for row in honest]


def test_no_digest_in_files_listings(sandbox: Sandbox) -> None:
    client = login(sandbox)
    session = demo_session(sandbox, "sub-2_ses-1")
    url = f"{sandbox.url}/data/experiments/{session.id}/scans/1/resources/DICOM/files"
    assert all(len(row["digest"]) == 32 for row in rows(client, url))
    sandbox.faults.no_digest = True
    assert {row["digest"] for row in rows(client, url)} == {""}


def test_foreign_links_in_files_listings(sandbox: Sandbox) -> None:
    client = login(sandbox)
    session = demo_session(sandbox, "sub-2_ses-1")
    url = f"{sandbox.url}/data/experiments/{session.id}/scans/1/resources/DICOM/files"
    sandbox.faults.foreign_links = "http://elsewhere.invalid:8080"
    assert all(row["URI"].startswith("http://elsewhere.invalid:8080/data/") for row in rows(client, url))


def test_assigning_a_count_rearms_it_and_reset_clears_all(sandbox: Sandbox) -> None:
    client = login(sandbox)
    uri, _ = first_file_uri(sandbox, client)
    sandbox.faults.missing_count = 1
    assert [client.get(uri, timeout=TIMEOUT).status_code for _ in range(2)] == [404, 200]
    sandbox.faults.missing_count = 1
    assert client.get(uri, timeout=TIMEOUT).status_code == 404
    sandbox.faults.missing_count = -1
    sandbox.faults.reset()
    assert sandbox.faults == Faults()
    assert client.get(uri, timeout=TIMEOUT).status_code == 200


def test_file_faults_spare_files_listings_and_zips(sandbox: Sandbox) -> None:
    client = login(sandbox)
    session = demo_session(sandbox, "sub-2_ses-1")
    url = f"{sandbox.url}/data/experiments/{session.id}/scans/1/resources/DICOM/files"
    sandbox.faults = Faults(status=500, missing_count=-1, corrupt_count=-1)
    assert rows(client, url)
    archive = client.get(url, params={"format": "zip"}, timeout=TIMEOUT)
    assert archive.status_code == 200 and zipfile.ZipFile(io.BytesIO(archive.content)).testzip() is None


# --- the request log ------------------------------------------------------------------------

def test_log_records_every_request(sandbox: Sandbox) -> None:
    client = login(sandbox)
    uri, file = first_file_uri(sandbox, client)
    sandbox.clear_log()
    client.get(uri, timeout=TIMEOUT)
    requests.get(f"{sandbox.url}/data/projects", timeout=TIMEOUT)
    downloaded, refused = sandbox.log
    assert (downloaded.method, downloaded.status, downloaded.bytes, downloaded.user) == ("GET", 200, file.size, "demo")
    assert downloaded.path == urlsplit(uri).path
    assert (refused.path, refused.status, refused.user) == ("/data/projects", 401, "")
    assert sandbox.file_requests() == [downloaded]


# --- the data itself ------------------------------------------------------------------------

def test_demo_dicoms_carry_the_promised_tags(sandbox: Sandbox) -> None:
    project = sandbox.catalog.projects["DEMO"]
    labels = [subject.label for subject in project.subjects]
    assert sorted(labels, key=lambda label: int(label.split("-")[1])) == ["sub-2", "sub-3", "sub-10"]
    for subject in project.subjects:
        for session in subject.sessions:
            for scan in session.scans:
                dicom = scan.find_resource("DICOM")
                if dicom is None:
                    assert scan.type == "localizer"
                    continue
                assert 3 <= len(dicom.files) <= 16
                datasets = [pydicom.dcmread(io.BytesIO(file.data())) for file in dicom.files]
                for file, dataset in zip(dicom.files, datasets):
                    assert dataset.PatientID == subject.label
                    assert dataset.Modality == "MR"
                    assert str(dataset.SeriesNumber) == scan.id
                    assert dataset.SeriesDescription == scan.series_description
                    assert dataset.StudyDescription and dataset.RepetitionTime and dataset.EchoTime
                    base = file.name.rsplit("/", 1)[-1]
                    assert base.startswith(f"{dataset.StudyInstanceUID}-{scan.id}-{dataset.InstanceNumber}-")
                    assert len(dataset.PixelData) == dataset.Rows * dataset.Columns * 2
                assert len({dataset.SOPInstanceUID for dataset in datasets}) == len(datasets)
                assert len({file.name for file in dicom.files}) == len(datasets)
                if scan.type != "fmap":
                    assert [d.InstanceNumber for d in datasets] == list(range(1, len(datasets) + 1))
                if scan.type == "func_rest":   # several volumes: a 4D run
                    assert len({d.AcquisitionNumber for d in datasets}) >= 2


def test_the_demo_session_holds_what_a_real_one_does(sandbox: Sandbox) -> None:
    """Four slices a volume; the field map as Siemens writes it; a diffusion trace in its series."""
    scans = {scan.id: [pydicom.dcmread(io.BytesIO(file.data())) for file in scan.find_resource("DICOM").files]
             for scan in demo_session(sandbox, "sub-2_ses-1").scans if scan.find_resource("DICOM")}
    dwi = scans["6"]
    assert [float(d.DiffusionBValue) for d in dwi[::4]] == [0, 1000, 1000, 1000]
    assert [list(d.ImageType) for d in dwi[::4]][-1] == ["DERIVED", "PRIMARY", "DIFFUSION", "TRACEW"]
    magnitude, phase = scans["7"], scans["8"]
    assert [(d.EchoNumbers, d.InstanceNumber, float(d.EchoTime)) for d in magnitude] == \
        [(1, 1, 4.92), (1, 2, 4.92), (1, 3, 4.92), (2, 1, 7.38), (2, 2, 7.38), (2, 3, 7.38)]
    assert {tuple(d.ImageType) for d in magnitude} == {("ORIGINAL", "PRIMARY", "M", "ND")}
    assert {(tuple(d.ImageType), d.EchoNumbers, float(d.EchoTime)) for d in phase} == \
        {(("ORIGINAL", "PRIMARY", "P", "ND"), 2, 7.38)}
    assert {d.SeriesDescription for d in magnitude + phase} == {"gre_field_mapping"}


def test_dcm2niix_makes_of_the_demo_session_the_images_a_real_session_gives(sandbox: Sandbox, tmp_path: Path) -> None:
    images: dict[str, dict[str, Any]] = {}
    for scan in demo_session(sandbox, "sub-2_ses-1").scans:
        dicom = scan.find_resource("DICOM")
        if dicom is None:
            continue
        folder, out = tmp_path / scan.id, tmp_path / f"out-{scan.id}"
        folder.mkdir()
        out.mkdir()
        for file in dicom.files:
            (folder / file.name.replace("/", "_")).write_bytes(file.data())
        subprocess.run(["dcm2niix", "-z", "y", "-b", "y", "-ba", "y", "-f", "%s_%d", "-o", str(out), str(folder)],
                       check=True, capture_output=True, timeout=60)
        for sidecar in out.glob("*.json"):
            images[sidecar.name[:-len(".json")]] = json.loads(sidecar.read_text())
    assert sorted(images) == ["1_t1_mprage_sag", "2_t2_space", "3_bold_rest_ap", "5_bold_rest_ap",
                              "6_dwi_64dir", "6_dwi_64dira", "7_gre_field_mapping_e1",
                              "7_gre_field_mapping_e2", "8_gre_field_mapping_e2_ph"]
    header = nibabel_header(tmp_path / "out-3" / "3_bold_rest_ap.nii.gz")
    assert header["dim"][0] == 4 and list(header["dim"][1:5]) == [32, 32, 4, 2]
    assert images["3_bold_rest_ap"]["RepetitionTime"] == 2
    assert (images["7_gre_field_mapping_e1"]["EchoTime"], images["7_gre_field_mapping_e2"]["EchoTime"]) == \
        (0.00492, 0.00738)
    phase = images["8_gre_field_mapping_e2_ph"]
    assert (phase["EchoTime1"], phase["EchoTime2"], phase["ImageType"][2]) == (0.00492, 0.00738, "P")
    derived = [name for name, sidecar in images.items() if sidecar["ImageType"][0] == "DERIVED"]
    assert derived == ["6_dwi_64dir"]
    assert (tmp_path / "out-6" / "6_dwi_64dira.bval").read_text().split() == ["0", "1000", "1000"]


def nibabel_header(path: Path) -> Any:
    import nibabel
    return nibabel.load(path).header


def test_hostile_names_are_listed_and_served(make_sandbox: Any) -> None:
    sb = make_sandbox(hostile=True)
    client = login(sb)
    session = sb.catalog.find_session("HOSTILE", "ses 1/x")
    by_label = client.get(f"{sb.url}/data/projects/HOSTILE/subjects/sub%201/experiments/ses%201%2Fx/scans",
                          params={"format": "json"}, timeout=TIMEOUT)
    assert by_label.status_code == 200
    types = {row["type"] for row in by_label.json()["ResultSet"]["Result"]}
    assert types == {"T1/../../evil", "", "T2"}
    listed = rows(client, f"{sb.url}/data/experiments/{session.id}/scans/ALL/files")
    names = {row["Name"] for row in listed}
    assert set(HOSTILE_FILE_NAMES) <= names
    catalog_files = {file.name: file for scan in session.scans for file in scan.resources[0].files
                     if scan.id == "1"}
    for row in listed:
        path = row["URI"]
        assert all(segment not in (".", "..") for segment in path.split("/")), path
        assert " " not in path and "?" not in path
        response = client.get(sb.url + path, timeout=TIMEOUT)
        assert response.status_code == 200, path
        assert md5(response.content) == row["digest"]
        if "/scans/1/" in path:
            assert unquote(path.split("/files/", 1)[1]) == row["Name"]
            assert catalog_files[row["Name"]].md5 == row["digest"]


# --- the command line -----------------------------------------------------------------------

def start_cli(*options: str) -> tuple[subprocess.Popen[str], str]:
    process = subprocess.Popen([sys.executable, "-m", "sandbox", *options], cwd=REPO_ROOT,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    line = process.stdout.readline()
    match = re.fullmatch(r"Sandbox XNAT serving at (\S+)  user: demo  password: demo-password\n", line)
    assert match, line
    return process, match.group(1)


def stop_cli(process: subprocess.Popen[str]) -> None:
    process.terminate()
    assert process.wait(timeout=10) == 0
    assert process.stderr.read() == ""


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")
def test_command_line_serves_curl(tmp_path: Path) -> None:
    log_file = tmp_path / "requests.jsonl"
    process, url = start_cli("--prefix", "/xnat", "--log", str(log_file))
    try:
        assert url.startswith("http://127.0.0.1:") and url.endswith("/xnat")
        # Credentials go in a config file, not argv.
        config = tmp_path / "curlrc"
        config.write_text('user = "demo:demo-password"\n')
        os.chmod(config, 0o600)
        output = subprocess.run(["curl", "-s", "-K", str(config), f"{url}/data/projects?format=json"],
                                capture_output=True, text=True, timeout=20, check=True).stdout
        assert "DEMO" in {row["ID"] for row in json.loads(output)["ResultSet"]["Result"]}
    finally:
        stop_cli(process)
    entry = json.loads(log_file.read_text().splitlines()[0])
    assert entry == {"method": "GET", "path": "/xnat/data/projects", "query": "format=json", "status": 200,
                     "bytes": entry["bytes"], "user": "demo"}


def test_command_line_fault_options(tmp_path: Path) -> None:
    process, url = start_cli("--throttle-count", "1", "--retry-after", "0", "--hostile", "--scale", "2", "1", "1", "1", "10")
    try:
        client = requests.Session()
        client.auth = ("demo", "demo-password")
        projects = {row["ID"] for row in rows(client, f"{url}/data/projects")}
        assert {"HOSTILE", "BIG"} <= projects
        session_id = rows(client, f"{url}/data/projects/BIG/experiments")[0]["ID"]
        file_uri = rows(client, f"{url}/data/experiments/{session_id}/scans/ALL/files")[0]["URI"]
        assert client.get(url + file_uri, timeout=TIMEOUT).status_code == 429
        assert client.get(url + file_uri, timeout=TIMEOUT).status_code == 200
    finally:
        stop_cli(process)


def test_command_line_help_reads_well() -> None:
    result = subprocess.run([sys.executable, "-m", "sandbox", "--help"], cwd=REPO_ROOT, capture_output=True,
                            text=True, timeout=20)
    assert result.returncode == 0
    assert "demo-password" in result.stdout and "--reset-count" in result.stdout
