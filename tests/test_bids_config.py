"""--bids-config: a dcm2bids configuration is checked before anything is fetched; whatever would
become a path is letters and digits, whatever dcm2bids cannot compare is refused, naming the
file, the description and the field; a valid lab configuration still works."""
from __future__ import annotations

import io
import json

import pydicom
import pytest

from cli import REPO, find_session, run_script
from sandbox import File, Sandbox
from sandbox.dicom_maker import dicom_bytes
from xnat_download.bids_config import (BIDS_DATATYPES, BidsConfig, ConfigError, Description,
                                       load_config, read_config)

SESSION_SCRIPT = "4_download_session.py"
T1 = {"datatype": "anat", "suffix": "T1w", "criteria": {"SeriesDescription": "t1_*"}}


def config_with(**changes) -> dict:
    """A one-description configuration whose description has these changes."""
    return {"descriptions": [{**T1, **changes}]}


def problem_of(data: dict) -> str:
    with pytest.raises(ConfigError) as caught:
        read_config(data, "lab.json")
    return str(caught.value)


# --- the pure pieces ---------------------------------------------------------------------------

def test_a_lab_configuration_reads_into_descriptions_and_options():
    config = read_config({
        "search_method": "re", "case_sensitive": False, "dup_method": "dup", "bids_uri": "relative",
        "dcm2niixOptions": "-z y -b y -ba y -f %3s_%f_%p_%t", "post_op": [], "extractors": {},
        "descriptions": [
            {"id": "rest", "datatype": "func", "suffix": "bold", "custom_entities": "task-rest_acq-mb",
             "criteria": {"SeriesDescription": "bold.*", "EchoNumber": 1,
                          "ImageType": {"any": [["ORIGINAL", "PRIMARY", "M"], ["ORIG*"]]}}},
            {"datatype": "fmap", "suffix": "phasediff", "custom_entities": ["dir-AP", "echo"],
             "criteria": {"EchoTime": {"btwe": ["0.004", 0.008]}, "FlipAngle": {"gt": 10}},
             "sidecar_changes": {"IntendedFor": ["rest"], "B0FieldSource": "pepolar", "Removed": ""}},
        ]}, "lab.json")
    assert config == BidsConfig(
        descriptions=(
            Description("func", "bold", {"SeriesDescription": "bold.*", "EchoNumber": 1,
                                         "ImageType": {"any": [["ORIGINAL", "PRIMARY", "M"], ["ORIG*"]]}},
                        ("task-rest", "acq-mb"), {}, "rest"),
            Description("fmap", "phasediff", {"EchoTime": {"btwe": ["0.004", 0.008]}, "FlipAngle": {"gt": 10}},
                        ("dir-AP", "echo"),
                        {"IntendedFor": ["rest"], "B0FieldSource": "pepolar", "Removed": ""})),
        search_method="re", case_sensitive=False, dup_method="dup", bids_uri="relative")


def test_dcm2bids_defaults_hold_when_the_file_sets_no_option():
    assert read_config(config_with(), "lab.json") == BidsConfig((Description("anat", "T1w", T1["criteria"]),))


@pytest.mark.parametrize("changes, problem", [
    ({"datatype": "../../../escaped_dt"}, 'datatype "../../../escaped_dt" is not a BIDS datatype (one of anat, '),
    ({"datatype": "/srv/anat"}, 'datatype "/srv/anat" is not a BIDS datatype'),
    ({"datatype": {"name": "anat"}}, 'datatype {"name": "anat"} is not a BIDS datatype'),
    ({"suffix": "a/b"}, 'suffix "a/b" is not ASCII letters and digits'),
    ({"suffix": "../.."}, 'suffix "../.." is not ASCII letters and digits'),
    ({"custom_entities": "../x-1"}, 'custom_entities "../x-1" is not key-value with ASCII letters and digits'),
    ({"custom_entities": ["acq-a/b"]}, 'custom_entities "acq-a/b" is not key-value'),
    ({"custom_entities": "acq-0.8mm"}, 'custom_entities "acq-0.8mm" is not key-value'),
    ({"custom_entities": "sub-02"}, "sub and ses come from XNAT's labels"),
    ({"custom_entities": 5}, "custom_entities 5 is not a string or a list of strings"),
    ({"criteria": {"ImageType": {"any": None}}}, 'criteria "ImageType": {"any": null} needs a list of values'),
    ({"criteria": {"ImageType": {"any": 5}}}, 'criteria "ImageType": {"any": 5} needs a list of values'),
    ({"criteria": {"ImageType": {"all": ["M"]}}}, 'uses "all", which dcm2bids 3.3 does not know'),
    ({"criteria": {"EchoTime": {"btw": [1]}}}, "needs a list of two numbers to compare with"),
    ({"criteria": {"EchoTime": {"gt": "late"}}}, "needs a number to compare with"),
    ({"criteria": {"EchoTime": {"gt": 1, "lt": 2}}}, "has more than one key"),
    ({"criteria": {"EchoTime": None}}, 'criteria "EchoTime": null is not a string, number'),
    ({"criteria": {}}, "criteria {} is not an object of sidecar fields"),
    ({"sidecar_changes": ["TaskName", "rest"]}, 'sidecar_changes ["TaskName", "rest"] is not an object'),
    ({"sidecar_changes": {"TaskName": {"x": 1}}}, "is not a string, number, true/false or a list of them"),
    ({"sidecar_changes": {"IntendedFor": "rset"}}, 'IntendedFor": "rset" is not the id of any description'),
    ({"id": 7}, "description 1: id 7 is not a string"),
    ({"dataType": "anat"}, "dataType is a dcm2bids 2 key; dcm2bids 3 calls it datatype"),
])
def test_a_bad_description_names_the_description_and_the_field(changes, problem):
    message = problem_of(config_with(**changes))
    assert message.startswith("lab.json: description 1") and problem in message, message


def test_a_description_with_an_id_is_named_by_its_number_and_its_id():
    data = {"descriptions": [T1, {**T1, "id": "t1b", "suffix": "T1_w"}]}
    assert problem_of(data).startswith('lab.json: description 2 (id "t1b"): suffix "T1_w"')


@pytest.mark.parametrize("options, problem", [
    ({"search_method": "glob"}, 'search_method "glob" is not one of fnmatch, re'),
    ({"dup_method": "runs"}, 'dup_method "runs" is not one of run, dup'),
    ({"bids_uri": "uri"}, 'bids_uri "uri" is not one of URI, relative'),
    ({"case_sensitive": "no"}, 'case_sensitive "no" is not true or false'),
    ({"post_op": [{"cmd": "pydeface src_file", "datatype": "anat", "suffix": ["T1w"]}]}, "post_op"),
    ({"extractors": {"SeriesDescription": ["run-(?P<run>[0-9]+)"]}}, "extractors"),
    ({"dcm2niixOptions": "-b y -ba y -z y -i y"}, "dcm2niixOptions"),
    ({"dcm2niixOptions": "-b y -ba y -z y -f %p"}, "dcm2niixOptions"),
    ({"compKeys": ["SeriesNumber"]}, "compKeys"),
    ({"search_method": "re", "descriptions": [{**T1, "criteria": {"SeriesDescription": "t1_("}}]},
     "is not a regular expression"),
])
def test_an_option_that_would_change_the_output_is_refused(options, problem):
    message = problem_of({**config_with(), **options})
    assert message.startswith("lab.json: ") and problem in message, message


def test_unsupported_options_say_they_are_not_supported():
    assert "is not supported" in problem_of({**config_with(), "post_op": [{"cmd": "x"}]})


def test_the_datatypes_are_those_of_the_bids_schema():
    schema = pytest.importorskip("bidsschematools.schema").load_schema()
    # phenotype/ sits at the dataset root, never below a session.
    assert set(BIDS_DATATYPES) == set(schema.objects.datatypes) - {"phenotype"}


def test_a_file_that_is_not_a_configuration_says_so(tmp_path):
    path = tmp_path / "lab.json"
    path.write_text('["descriptions"]')
    with pytest.raises(ConfigError, match=r'lab\.json: has no "descriptions" list'):
        load_config(path)


# --- through the script, against the sandbox --------------------------------------------------

def second_echo(data: bytes) -> bytes:
    dataset = pydicom.dcmread(io.BytesIO(data))
    dataset.EchoNumbers = 2   # dcm2niix writes EchoNumber in the sidecar for echoes after the first
    return dicom_bytes(dataset)


@pytest.fixture(scope="module")
def quiet_sandbox():
    """The demo; its first session's T1 is the second echo of a (single-echo) series."""
    sandbox = Sandbox()
    t1 = find_session(sandbox, "sub-2_ses-1").find_scan("1").find_resource("DICOM")
    t1.files[:] = [File.from_bytes(f.name, second_echo(f.data())) for f in t1.files]
    with sandbox:
        yield sandbox


BAD_CONFIGURATIONS = {
    "escaping datatype": (config_with(datatype="../../../escaped_dt"), 'datatype "../../../escaped_dt"'),
    "absolute datatype": (config_with(datatype="/srv/anat"), 'datatype "/srv/anat"'),
    "suffix with a slash": (config_with(suffix="a/b"), 'suffix "a/b"'),
    "entity key ../x": (config_with(custom_entities="../x-rest"), 'custom_entities "../x-rest"'),
    "datatype an object": (config_with(datatype={"x": 1}), "datatype {"),
    "any null": (config_with(criteria={"ImageType": {"any": None}}), 'criteria "ImageType"'),
    "any 5": (config_with(criteria={"ImageType": {"any": 5}}), 'criteria "ImageType"'),
    "custom_entities 5": (config_with(custom_entities=5), "custom_entities 5"),
    "sidecar_changes a list": (config_with(sidecar_changes=["a"]), 'sidecar_changes ["a"]'),
}


@pytest.mark.parametrize("name", BAD_CONFIGURATIONS)
def test_a_bad_configuration_stops_the_run_before_any_request(quiet_sandbox, tmp_path, name, in_process):
    data, field = BAD_CONFIGURATIONS[name]
    config = tmp_path / "lab.json"
    config.write_text(json.dumps(data))
    quiet_sandbox.clear_log()
    # Argument handling: main(argv) in this process (a new interpreter was most of the time).
    result = in_process(SESSION_SCRIPT, "--bids-config", str(config), cwd=tmp_path, sandbox=quiet_sandbox)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert lines[-1].startswith(f"{SESSION_SCRIPT}: error: --bids-config: {config}: description 1: {field}")
    assert not [line for line in lines if "error" in line][:-1] and "Traceback" not in result.stderr
    assert quiet_sandbox.log == []
    assert [path.name for path in tmp_path.iterdir()] == ["lab.json"]


def test_a_configuration_with_numbers_as_criteria_converts(quiet_sandbox, tmp_path):
    config = tmp_path / "lab.json"
    config.write_text(json.dumps({"descriptions": [
        {"datatype": "anat", "suffix": "T1w", "custom_entities": "acq-mprage",
         "criteria": {"SeriesDescription": "t1_*", "SeriesNumber": 1, "EchoNumber": 2}},
        {"datatype": "anat", "suffix": "T2w", "criteria": {"SeriesNumber": 2}}]}))
    result = run_script(SESSION_SCRIPT, "--scans", "1", "2", "--bids-config", str(config), cwd=tmp_path,
                        sandbox=quiet_sandbox)
    assert result.returncode == 0, result.stderr
    converted = sorted(path.relative_to(tmp_path / "bids").as_posix()
                       for path in (tmp_path / "bids").rglob("*.nii.gz"))
    assert converted == ["sub-2/ses-1/anat/sub-2_ses-1_T2w.nii.gz",
                         "sub-2/ses-1/anat/sub-2_ses-1_acq-mprage_T1w.nii.gz"]


def test_the_troubleshooting_page_lists_the_configuration_messages():
    troubleshooting = (REPO / "docs" / "troubleshooting.md").read_text(encoding="utf-8")
    assert "is not a BIDS datatype" in troubleshooting and "is not supported" in troubleshooting
