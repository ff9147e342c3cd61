"""XNAT's REST routes over a Catalog: what each request answers, independent of the socket.

`Api.answer(request)` turns an authenticated request into a `Reply`; the HTTP layer (handler.py)
deals with credentials, faults and sending. Every listing value is a string and every URI is
server-relative (`/data/...`, no site prefix), as xnat-api.md describes.
"""

from __future__ import annotations

import html
import json
import re
from collections.abc import Callable
from urllib.parse import quote, unquote

from .catalog import Catalog, File, Project, Resource, Scan, Session, SessionPlace, Subject
from .faults import Faults
from .floods import flooded_zip
from .messages import Forbidden, NotFound, Reply, Request, apply_range, error_reply
from .pages import Row, login_page, rows_as_csv, rows_as_html
from .zipstream import corrupted_copy, deflated_zip_chunks, zip_chunks, zip_folder_type, zip_length

LAST_MODIFIED = "Mon, 15 Jan 2024 10:15:00 GMT"
SESSION_XSI_TYPES = {"xnat:imagesessiondata", "xnat:mrsessiondata", "xnat:experimentdata"}


def file_uri_name(name: str) -> str:
    """A file name as it goes into a URI: sub-folders stay visible, everything else is encoded.

    A name whose parts are ordinary keeps its "/" (`secondary/x.dcm`); one with empty, "." or ".."
    parts is encoded whole, so no client or proxy can fold its dot segments into another path.
    """
    parts = name.split("/")
    if all(part not in ("", ".", "..") for part in parts):
        return "/".join(quote(part, safe="") for part in parts)
    return quote(name, safe="")


def session_uri(session: Session) -> str:
    return f"/data/experiments/{quote(session.id, safe='')}"


def scan_uri(session: Session, scan: Scan) -> str:
    return f"{session_uri(session)}/scans/{quote(scan.id, safe='')}"


def file_uri(session: Session, scan: Scan, resource: Resource, file: File) -> str:
    return f"{scan_uri(session, scan)}/resources/{resource.cat_id}/files/{file_uri_name(file.name)}"


def content_disposition(name: str) -> str:
    base = name.rsplit("/", 1)[-1] or "file"
    ascii_name = re.sub(r'[^A-Za-z0-9._ -]', "_", base)
    return f"attachment; filename=\"{ascii_name}\"; filename*=UTF-8''{quote(base, safe='')}"


# --- listings -------------------------------------------------------------------------------


# Schema paths of the scan element that /data/experiments?columns= understands.
SCAN_COLUMNS: dict[str, Callable[[Scan], str]] = {
    "xnat:imagescandata/id": lambda scan: scan.id,
    "xnat:imagescandata/type": lambda scan: scan.type,
    "xnat:imagescandata/series_description": lambda scan: scan.series_description,
    "xnat:imagescandata/quality": lambda scan: scan.quality,
    "xnat:imagescandata/note": lambda scan: scan.note,
    "xnat:imagescandata/xsi_type": lambda scan: scan.xsi_type,
}

# Columns of the session itself, by short name and by schema path.
SESSION_COLUMNS: dict[str, Callable[[SessionPlace], str]] = {
    "id": lambda place: place.session.id,
    "label": lambda place: place.session.label,
    "subject_label": lambda place: place.subject.label,
    "subject_id": lambda place: place.subject.id,
    "project": lambda place: place.project.id,
    "date": lambda place: place.session.date,
    "xsitype": lambda place: place.session.xsi_type,
    "insert_date": lambda place: place.session.insert_date,
    "xnat:imagesessiondata/id": lambda place: place.session.id,
    "xnat:imagesessiondata/label": lambda place: place.session.label,
    "xnat:imagesessiondata/date": lambda place: place.session.date,
    "xnat:imagesessiondata/project": lambda place: place.project.id,
    "xnat:subjectdata/label": lambda place: place.subject.label,
    "xnat:subjectdata/id": lambda place: place.subject.id,
}
DEFAULT_SESSION_COLUMNS = ("ID", "project", "date", "xsiType", "label", "insert_date", "subject_ID")


class Api:
    def __init__(self, catalog: Catalog, prefix: str, faults: Callable[[], Faults],
                 ignore_columns: bool = False) -> None:
        self.catalog = catalog
        self.prefix = prefix
        self.faults = faults  # read at every request: tests replace sb.faults at will
        self.ignore_columns = ignore_columns

    # The route table is a walk down the path; each level checks access before going deeper.
    def answer(self, request: Request) -> Reply:
        raw = request.path.split("/")[1:]
        if len(raw) > 2 and raw[-1] == "":
            raw.pop()  # a trailing slash names the same thing
        parts = [unquote(part) for part in raw]
        try:
            if parts[:1] != ["data"] or len(parts) < 2:
                raise NotFound("The requested resource does not exist.")
            head, rest = parts[1], parts[2:]
            if head == "projects":
                if not rest:
                    return self.listing(request, self.project_rows(request.user))
                project = self.readable_project(rest[0], request.user, contents=len(rest) > 1)
                return self.project_route(request, project, rest[1:], raw[3:])
            if head == "subjects" and len(rest) == 1:
                found = self.catalog.subject_by_id(rest[0])
                if found is None:
                    raise NotFound(f"Subject {rest[0]} not found.")
                self.check_contents(found[0], request.user)
                return self.detail(request, "xnat:subjectData", self.subject_row(found[0], found[1]))
            if head == "experiments":
                if not rest:
                    return self.experiment_search(request, project=None)
                place = self.catalog.session_by_id(rest[0])
                if place is None:
                    raise NotFound(f"Experiment {rest[0]} not found.")
                self.check_contents(place.project, request.user)
                return self.session_route(request, place, rest[1:], raw[3:])
            raise NotFound("The requested resource does not exist.")
        except (NotFound, Forbidden) as problem:
            return error_reply(problem.status, str(problem))

    # --- access ---

    def readable_project(self, project_id: str, user: str, contents: bool) -> Project:
        project = self.catalog.projects.get(project_id)
        # A private project is indistinguishable from a missing one for non-members.
        if project is None or (project.accessibility == "private" and user not in project.members):
            raise NotFound(f"Unable to find project {project_id}.")
        if contents:
            self.check_contents(project, user)
        return project

    @staticmethod
    def check_contents(project: Project, user: str) -> None:
        if user in project.members or project.accessibility == "public":
            return
        if project.accessibility == "private":
            raise NotFound("The requested resource does not exist.")
        raise Forbidden(f"The user {user} does not have access to the contents of project {project.id}.")

    @staticmethod
    def can_read(project: Project, user: str) -> bool:
        return user in project.members or project.accessibility == "public"

    # --- routes below a project and a session ---

    def project_route(self, request: Request, project: Project, parts: list[str], raw: list[str]) -> Reply:
        if not parts:
            return self.detail(request, "xnat:projectData", self.project_row(project))
        if parts == ["subjects"]:
            rows = [self.subject_row(project, subject) for subject in project.subjects]
            return self.listing(request, self.page(request, rows))
        if parts == ["experiments"]:
            return self.experiment_search(request, project=project)
        if parts[0] == "subjects":
            subject = project.find_subject(parts[1])
            if subject is None:
                raise NotFound(f"Subject {parts[1]} not found in project {project.id}.")
            if len(parts) == 2:
                return self.detail(request, "xnat:subjectData", self.subject_row(project, subject))
            if parts[2:] == ["experiments"]:
                rows = [self.session_row(SessionPlace(project, subject, session), with_subject=False)
                        for session in subject.sessions]
                return self.listing(request, rows)
            if parts[2] == "experiments" and len(parts) > 3:
                session = subject.find_session(parts[3])
                if session is None:
                    raise NotFound(f"Experiment {parts[3]} not found for subject {subject.label}.")
                return self.session_route(request, SessionPlace(project, subject, session), parts[4:], raw[4:])
            raise NotFound("The requested resource does not exist.")
        if parts[0] == "experiments":
            found = project.find_session(parts[1])
            if found is None:
                raise NotFound(f"Experiment {parts[1]} not found in project {project.id}.")
            return self.session_route(request, SessionPlace(project, found[0], found[1]), parts[2:], raw[2:])
        raise NotFound("The requested resource does not exist.")

    def session_route(self, request: Request, place: SessionPlace, parts: list[str], raw: list[str]) -> Reply:
        session = place.session
        if not parts:
            return self.detail(request, place.session.xsi_type, self.session_row(place, with_subject=True))
        if parts == ["resources"]:
            return self.listing(request, [])  # the demo sessions keep no session-level resources
        if parts[0] != "scans":
            raise NotFound("The requested resource does not exist.")
        if len(parts) == 1:
            return self.listing(request, [self.scan_row(session, scan) for scan in session.scans])
        scans = self.select_scans(session, parts[1])
        tail = parts[2:]
        if not tail:
            return self.detail(request, scans[0].xsi_type, self.scan_row(session, scans[0]))
        if tail == ["resources"]:
            return self.listing(request, [self.resource_row(resource) for scan in scans for resource in scan.resources])
        if tail == ["files"]:
            return self.files(request, place, [(scan, resource) for scan in scans for resource in scan.resources])
        if tail[0] == "resources" and len(tail) >= 3 and tail[2] == "files":
            chosen = [(scan, resource) for scan in scans
                      if (resource := scan.find_resource(tail[1])) is not None]
            if not chosen:
                raise NotFound(f"Resource {tail[1]} not found.")
            if len(tail) == 3:
                return self.files(request, place, chosen)
            # Everything after files/ is one name, which may hold "/" and its own escapes.
            name = unquote("/".join(raw[5:]))
            return self.download(request, chosen, name)
        raise NotFound("The requested resource does not exist.")

    @staticmethod
    def select_scans(session: Session, slot: str) -> list[Scan]:
        """The scans a URL's scan slot names: ALL, an ID, a comma list, or a type."""
        if slot.upper() == "ALL":
            scans = list(session.scans)
        else:
            wanted = slot.split(",")
            scans = [scan for scan in session.scans if scan.id in wanted]
            if not scans:
                scans = [scan for scan in session.scans if scan.type in wanted]
        if not scans:
            raise NotFound(f"Scan {slot} not found in experiment {session.label}.")
        return scans

    # --- files ---

    def files(self, request: Request, place: SessionPlace, chosen: list[tuple[Scan, Resource]]) -> Reply:
        faults = self.faults()
        if request.query.get("format") == "zip":
            entries = [(f"{place.session.label}/scans/{scan.id}-{zip_folder_type(scan.type)}"
                        f"/resources/{resource.label}/files/{file.name}", file)
                       for scan, resource in chosen for file in resource.files]
            if entries and faults.matches(request.path, request.query_string) \
                    and faults.take("corrupt_count"):
                # As when a file on the server's disk no longer matches its catalog: the zip's CRC
                # is right for the bytes it carries, the catalog's MD5 is not.
                middle = len(entries) // 2
                name, file = entries[middle]
                entries[middle] = (name, corrupted_copy(file))
            chunks = deflated_zip_chunks if faults.zip_deflate else zip_chunks
            if entries and faults.matches(request.path, request.query_string):
                entries, chunks = flooded_zip(entries, faults, chunks)
            return Reply(content_type="application/zip", stream=lambda: chunks(entries),
                         stream_length=zip_length(entries),
                         headers=[("Content-Disposition", f"attachment; filename=\"{place.session.label}.zip\"")])
        extra = 1 if faults.wrong_size else 0
        rows = [{"Name": file.name, "Size": str(file.size + extra),
                 "URI": faults.foreign_links + file_uri(place.session, scan, resource, file),
                 "collection": resource.label, "file_tags": "", "file_format": resource.format,
                 "file_content": resource.content, "cat_ID": resource.cat_id,
                 "digest": "" if faults.no_digest else file.md5}
                for scan, resource in chosen for file in resource.files]
        return self.listing(request, rows)

    @staticmethod
    def download(request: Request, chosen: list[tuple[Scan, Resource]], name: str) -> Reply:
        for _, resource in chosen:
            file = resource.find_file(name)
            if file is not None:
                break
        else:
            raise NotFound(f"File {name} not found.")
        headers = [("Last-Modified", LAST_MODIFIED), ("Content-Disposition", content_disposition(file.name)),
                   ("Accept-Ranges", "bytes")]
        reply = Reply(content_type="application/octet-stream", headers=headers, file=file,
                      range_start=0, range_end=file.size)
        if request.range_header:
            return apply_range(reply, request.range_header)
        return reply

    # --- rows ---

    def project_rows(self, user: str) -> list[Row]:
        return [self.project_row(project) for project in self.catalog.projects.values()
                if project.accessibility != "private" or user in project.members]

    @staticmethod
    def project_row(project: Project) -> Row:
        return {"ID": project.id, "secondary_ID": project.secondary_id, "name": project.name,
                "description": project.description, "pi_firstname": project.pi_firstname,
                "pi_lastname": project.pi_lastname, "URI": f"/data/projects/{quote(project.id, safe='')}"}

    @staticmethod
    def subject_row(project: Project, subject: Subject) -> Row:
        return {"ID": subject.id, "project": project.id, "label": subject.label,
                "insert_date": subject.insert_date, "insert_user": subject.insert_user,
                "URI": f"/data/subjects/{quote(subject.id, safe='')}"}

    @staticmethod
    def session_row(place: SessionPlace, with_subject: bool) -> Row:
        row = {"ID": place.session.id, "project": place.project.id, "date": place.session.date,
               "xsiType": place.session.xsi_type, "label": place.session.label,
               "insert_date": place.session.insert_date, "URI": session_uri(place.session)}
        if with_subject:
            row["subject_ID"] = place.subject.id
        return row

    @staticmethod
    def scan_row(session: Session, scan: Scan) -> Row:
        return {"xnat_imagescandata_id": scan.key, "ID": scan.id, "type": scan.type, "quality": scan.quality,
                "xsiType": scan.xsi_type, "note": scan.note, "series_description": scan.series_description,
                "URI": scan_uri(session, scan)}

    @staticmethod
    def resource_row(resource: Resource) -> Row:
        return {"xnat_abstractresource_id": resource.cat_id, "label": resource.label,
                "element_name": "xnat:resourceCatalog", "category": "scans", "cat_id": resource.cat_id,
                "cat_desc": "", "file_count": str(len(resource.files)), "file_size": str(resource.total_size),
                "tags": "", "content": resource.content, "format": resource.format}

    # --- the experiment search: one request for a whole project's sessions, or scans ---

    def experiment_search(self, request: Request, project: Project | None) -> Reply:
        query = request.query
        if project is None:
            wanted_project = query.get("project")
            projects = [p for p in self.catalog.projects.values() if self.can_read(p, request.user)
                        and (wanted_project is None or p.id == wanted_project)]
        else:
            projects = [project]
        xsi_type = query.get("xsiType", "").lower()
        if xsi_type and xsi_type not in SESSION_XSI_TYPES:
            places: list[SessionPlace] = []
        else:
            places = [SessionPlace(p, subject, session) for p in projects
                      for subject in p.subjects for session in subject.sessions]

        asked = [name.strip() for name in query.get("columns", "").split(",") if name.strip()]
        if not asked or self.ignore_columns:
            rows = [self.session_row(place, with_subject=True) for place in places]
        else:
            rows = self.column_rows(places, asked)
        if project is not None:
            rows = self.page(request, rows)
        return self.listing(request, rows)

    @staticmethod
    def column_rows(places: list[SessionPlace], asked: list[str]) -> list[Row]:
        # Schema paths come back lower-cased, short names as they were asked.
        names = [name.lower() if "/" in name else name for name in asked if name.lower() != "uri"]
        scan_asked = any(name.lower() in SCAN_COLUMNS for name in names)
        rows: list[Row] = []
        for place in places:
            session_values = {name: SESSION_COLUMNS[name.lower()](place)
                              for name in names if name.lower() in SESSION_COLUMNS}
            # With a scan column asked for, a session gives one row per scan (or one empty one).
            scans: list[Scan | None] = list(place.session.scans) if scan_asked else [None]
            for scan in scans or [None]:
                row: Row = {}
                for name in names:
                    if name in session_values:
                        row[name] = session_values[name]
                    elif name.lower() in SCAN_COLUMNS:
                        row[name] = SCAN_COLUMNS[name.lower()](scan) if scan is not None else ""
                    else:
                        row[name] = ""
                row["URI"] = session_uri(place.session)
                rows.append(row)
        return rows

    @staticmethod
    def page(request: Request, rows: list[Row]) -> list[Row]:
        try:
            offset = max(0, int(request.query.get("offset", "0")))
            limit = int(request.query["limit"]) if "limit" in request.query else None
        except ValueError:
            return rows
        return rows[offset:] if limit is None else rows[offset:offset + max(0, limit)]

    # --- rendering ---

    def listing(self, request: Request, rows: list[Row]) -> Reply:
        kind = request.query.get("format", "json").lower()
        if kind == "csv":
            return Reply(body=rows_as_csv(rows), content_type="text/csv")
        if kind == "html":
            return Reply(body=rows_as_html(rows), content_type="text/html;charset=UTF-8")
        body = json.dumps({"ResultSet": {"Result": rows, "totalRecords": str(len(rows))}}).encode()
        spoiled = self.faults().take_listing(request.path, request.query_string)
        if spoiled == "html":
            return Reply(body=login_page(self.prefix), content_type="text/html;charset=UTF-8")
        if spoiled == "empty":
            return Reply(body=b"")
        if spoiled == "truncated":
            return Reply(body=body[:max(1, len(body) // 2)])
        if spoiled == "nokeys":
            return Reply(body=json.dumps({"items": rows}).encode())
        return Reply(body=body)

    @staticmethod
    def detail(request: Request, xsi_type: str, fields: Row) -> Reply:
        """One object: XNAT's `items` JSON with format=json, a small XML document otherwise."""
        if request.query.get("format", "").lower() == "json":
            item = {"children": [], "meta": {"xsi:type": xsi_type, "isHistory": False},
                    "data_fields": fields}
            return Reply(body=json.dumps({"items": [item]}).encode())
        attributes = " ".join(f"{key}=\"{html.escape(value)}\"" for key, value in fields.items())
        element = xsi_type.split(":")[-1]
        body = (f"<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<xnat:{element} {attributes} "
                f"xmlns:xnat=\"http://nrg.wustl.edu/xnat\"/>\n").encode()
        return Reply(body=body, content_type="text/xml")
