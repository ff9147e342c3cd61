"""The machinery of the xnat-download scripts, one concern per module.

Imports run one way: the scripts import this package and common.py, and pass common.py's site
defaults (config.SiteDefaults) and folder layout in, and cli.py hands the library the run's
Environment; a module imports only the modules listed before it here, never common.py nor a
script (common.py imports names, the first of them):

    names       server names made safe: cleaned, cut, kept inside, tagged when they clean up alike
    environment what a run is handed: its arguments, streams, environment variables, folder
    errors      the errors a run can end with, exit codes, secrets scrubbed from messages
    output      the one channel on stderr: notes, warnings, errors and details as records of the
                xnat_download logger, one formatter that prefixes and redacts every line; the
                progress bar
    config      settings and credentials: option > environment > site defaults > ~/.netrc >
                prompt; every environment variable is read here
    retry       the retry rule: which answers, how long to wait, how often, when to log in again
    meter       what the run has measured of the network: request time, own CPU, throughput
    connection  xnatpy login, GET retried by that rule, a fresh login on 401
    catalog     projects, subjects, sessions, scans and files; defaults, filters, shards
    plan        which files of a scan to fetch, and the safe path each one takes
    selection   which session(s), scans and shard a download takes, and what it skips and why
    disk        folders, digests and disk errors
    manifest    .xnat-manifest.json, the folder lock, and the resume check (check_on_disk)
    fetch_file  one file by one request: .part, continued where allowed, verified, retried; the
                FetchContext every fetch shares (connection, stop flag, progress bar)
    fetch_zip   a scan as one zip stream, unpacked and verified entry by entry
    routing     the route chooser: one zip or file by file per scan, by a cost model of the network
    pool        the worker threads, which take follow-up tasks while they run
    fetch_session one session's scans at a time: what is present, routes, outcomes, the run's tally
    bids_config dcm2bids configuration files (--bids-config), checked before anything is fetched
    bids_match  dcm2bids's rules: criteria, acquisition order, entity order, runs, ids
    bids_names  BIDS names: the name, labels, directions, image kinds; dcm2bids configurations
    bids_reproin ReproIn series names, read as heudiconv's reproin heuristic reads them
    bids_identify what an image is, from its sidecar and NIfTI header: rules by datatype and suffix
    bids_rules  the default naming: ReproIn, the default map, identification; labels and runs
    bids_dicom  what --bids reads of DICOM headers and dcm2niix's files beside the sidecar
    bids_tables scans.tsv rows and the participant's age and sex
    bids_dataset the dataset's shared files (record, participants, README) under a lock
    bids        the BIDS dataset: dcm2niix on each verified scan, moved into place, a record
    download    the story of scripts 3 and 4: plan, fetch or --dry-run, --bids, summary
    cli         options and the settings they make (keywords, frozen records: nothing below sees
                argparse), the levels -q and -v set, run(main): the one exit point
"""

__version__ = "1.0.0"
