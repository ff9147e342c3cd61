"""The machinery of the xnat-download scripts, one concern per module.

Imports run one way: the scripts import this package and common.py; the modules import common.py
(the site defaults and the folder layout) and the modules listed before them here; common.py
imports names, which imports neither common.py nor any other module:

    names       server names made safe: cleaned, cut, kept inside, tagged when they clean up alike
    errors      the errors a run can end with, exit codes, secrets scrubbed from messages
    cli         options, logging, notes and warnings, run(main): one line and an exit code
    config      settings and credentials: option > environment > common.py > ~/.netrc > prompt
    connection  xnatpy login, GET with retries and backoff, a fresh login on 401
    catalog     projects, subjects, sessions, scans and files; defaults, filters, shards
    plan        which files of a scan to fetch, and the safe path each one takes
    disk        folders, digests and disk errors
    manifest    .xnat-manifest.json and the folder lock
    fetch_file  one file by one request: .part, continued where allowed, verified, retried
    fetch_zip   a scan as one zip stream, unpacked and verified entry by entry
    travel      how each scan's files travel: one zip, or file by file
    pool        the worker threads, which take follow-up tasks while they run
    transfer    one session's transfer: what is present, routes, outcomes, the tally
    bids_config dcm2bids configuration files (--bids-config), checked before anything is fetched
    bids_match  dcm2bids's rules: criteria, acquisition order, entity order, runs, ids
    bids_names  BIDS names: the default map, dcm2bids configurations, labels, runs
    bids_dataset the dataset's shared files (record, participants, README) under a lock
    bids        the BIDS dataset: dcm2niix on each verified scan, moved into place, a record
    download    the story of scripts 3 and 4: plan, fetch or --dry-run, --bids, summary
"""
