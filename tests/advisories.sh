#!/usr/bin/env bash
# Security advisories for the dependency tree (cargo-deny's `advisories` check, deny.toml's rules),
# without reaching GitHub: against a snapshot of the RustSec advisory database, by default the
# one beside the project (../shared/advisory-db, with its SNAPSHOT.md; for a clone of a local
# checkout, also the one beside that checkout), or the one POOLWATCH_ADVISORY_DB names.
#
#   tests/advisories.sh check        the check; `make test` runs it
#   tests/advisories.sh self-test    a copy of the snapshot with a made-up advisory for a crate
#                                    of Cargo.lock must fail the check, so must a copy dated
#                                    2000, and the snapshot must pass it: a broken wiring (wrong
#                                    folder, a database never read, an age cargo-deny cannot see)
#                                    cannot pass unnoticed
#
# cargo-deny reads an offline database only from a git checkout named after the database's URL
# (`<db-path>/advisory-db-<hash>`), takes its age from the checkout (the HEAD commit's date or
# .git/HEAD's mtime, the later) and refuses one older than deny.toml's `maximum-db-staleness`. So
# the snapshot is copied into the cache once per content (sha256 of its 1,225 files: 0.03 s with
# the files in the page cache), committed there with the snapshot's own date on both, and
# cargo-deny runs with a copy of deny.toml whose `db-path` points at it. The folder name is the
# one cargo-deny itself asks for.
#
# No snapshot: with POOLWATCH_ADVISORIES=live, the live database (cargo-deny fetches it from
# GitHub, as `make audit` does); with CI=true, a failure (CI never skips silently); otherwise a
# pass that says advisories were not checked and how to check them.
#
# Environment: CARGO_DENY (the binary), POOLWATCH_CACHE_DIR (default ~/.cache/poolwatch),
# POOLWATCH_ADVISORY_DB, POOLWATCH_ADVISORIES, CI.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$PWD

CARGO_DENY=${CARGO_DENY:-cargo-deny}
CACHE=${POOLWATCH_CACHE_DIR:-$HOME/.cache/poolwatch}/advisory-db
# The default snapshot: beside this checkout, or, for a clone of a local checkout (CI's
# `git clone . "$(mktemp -d)"`), beside the checkout it was cloned from.
default_snapshot() {
  local origin
  echo "$(dirname "$ROOT")/shared/advisory-db"
  origin=$(git -C "$ROOT" remote get-url origin 2>/dev/null) || return 0
  origin=${origin#file://}
  [ -d "$origin" ] && echo "$(cd "$origin" && dirname "$PWD")/shared/advisory-db"
  return 0
}
if [ -n "${POOLWATCH_ADVISORY_DB:-}" ]; then
  SNAPSHOT=$POOLWATCH_ADVISORY_DB
else
  SNAPSHOT=
  while read -r candidate; do
    if [ -f "$candidate/SNAPSHOT.md" ]; then SNAPSHOT=$candidate; break; fi
  done < <(default_snapshot)
  SNAPSHOT=${SNAPSHOT:-$(dirname "$ROOT")/shared/advisory-db}
fi
WORK=$ROOT/target/advisories

say() { echo "advisories: $*"; }
fail() { echo "advisories: $*" >&2; exit 1; }

# The snapshot's commit and date, from its SNAPSHOT.md ("at commit <40 hex>, committed <ISO date>").
snapshot_field() {
  sed -n "s/.*$1 \([^ ,]*\).*/\1/p" "$SNAPSHOT/SNAPSHOT.md" | head -n 1
}

# deny.toml with `db-path = "$1"` in its [advisories] table, into $2.
config_with_db() {
  awk -v db="$1" '
    { print }
    /^\[advisories\][[:space:]]*$/ { printf "db-path = \"%s\"\n", db; done = 1 }
    END { if (!done) { print "[advisories]"; printf "db-path = \"%s\"\n", db } }
  ' "$ROOT/deny.toml" >"$2"
}

# The folder cargo-deny wants under a db-path: it names it when the folder is missing.
db_folder() {
  local empty=$WORK/empty
  mkdir -p "$empty"
  config_with_db "$empty" "$WORK/probe.toml"
  local folder
  folder=$("$CARGO_DENY" --offline --locked --config "$WORK/probe.toml" check advisories 2>&1 \
    | grep -o 'advisory-db-[0-9a-f]\{8,\}' | head -n 1 || true)
  [ -n "$folder" ] || fail "cargo-deny did not name the database folder it reads; is $CARGO_DENY 0.20?"
  echo "$folder"
}

# Commits everything in git checkout $1 with message $3, dated $2. cargo-deny takes a database's
# age as the later of its HEAD commit's date and the mtime of .git/HEAD (which `git init` wrote
# today), so both carry the date: its `maximum-db-staleness` guard then sees the true age.
commit_dated() {
  local dir=$1 date=$2 message=$3
  (
    cd "$dir"
    export GIT_AUTHOR_DATE=$date GIT_COMMITTER_DATE=$date
    export GIT_AUTHOR_NAME=poolwatch GIT_AUTHOR_EMAIL=poolwatch@localhost
    export GIT_COMMITTER_NAME=poolwatch GIT_COMMITTER_EMAIL=poolwatch@localhost
    git add -A
    git -c commit.gpgsign=false commit -q -m "$message"
    touch -d "$date" .git/HEAD
  )
}

# A git checkout of the database in $1 (the files of $2), committed at the snapshot's date.
commit_database() {
  local dir=$1 source=$2 date=$3
  [ ! -e "$dir" ] || chmod -R u+w "$dir"
  rm -rf "$dir"
  mkdir -p "$dir"
  cp -R "$source/crates" "$source/rust" "$dir/"
  [ ! -f "$source/LICENSE.txt" ] || cp "$source/LICENSE.txt" "$dir/"
  # The shared snapshot is read-only, and cp keeps the modes: without this, a user who is not
  # root could neither add the self-test's advisory nor remove the copy.
  chmod -R u+w "$dir"
  git init -q -b main "$dir"
  commit_dated "$dir" "$date" "RustSec advisory database snapshot"
}

# The prepared checkout of the snapshot (commit $1, date $2) in cargo-deny's folder $3 under its
# db-path, which is printed; made once per content.
prepared_db() {
  local commit=$1 date=$2 folder=$3
  local hash
  # The files and the date they are committed with: a corrected date in SNAPSHOT.md makes a new
  # checkout too.
  hash=$(cd "$SNAPSHOT" && { echo "$date"; find crates rust -type f -print0 | LC_ALL=C sort -z \
    | xargs -0 sha256sum; } | sha256sum | cut -c1-16)
  # v2: .git/HEAD dated too (checkouts made before it look as fresh as the day they were made).
  local db_path=$CACHE/v2-${commit:0:12}-$hash
  if [ ! -f "$db_path/$folder/.poolwatch-ready" ]; then
    # Made aside and renamed into place, so that a check running at the same time (another
    # worktree's `make test` shares the cache) never reads a half-made checkout. The loser of a
    # race drops its copy: both hold the same content.
    mkdir -p "$db_path"
    local scratch
    scratch=$(mktemp -d "$CACHE/.prepare.XXXXXX")
    commit_database "$scratch/$folder" "$SNAPSHOT" "$date" >&2
    touch "$scratch/$folder/.poolwatch-ready"
    mv -T "$scratch/$folder" "$db_path/$folder" 2>/dev/null || true
    chmod -R u+w "$scratch"
    rm -rf "$scratch"
  fi
  echo "$db_path"
}

# Runs the advisories check against db-path $1; its exit status is cargo-deny's. Yanked versions
# come from cargo's local index cache; where cargo-deny cannot read it (a cargo that writes a
# cache format it does not know), it would only warn and pass without that check: an error here.
check_against() {
  config_with_db "$1" "$WORK/deny.toml"
  "$CARGO_DENY" --offline --locked --config "$WORK/deny.toml" check advisories \
    --deny index-failure --deny index-cache-load-failure
}

# Whether a snapshot is there; if not, what to do about it (exits). $1 is the mode: the live
# check stands in for `check` only (a self-test needs a database it can copy).
require_snapshot() {
  [ -f "$SNAPSHOT/SNAPSHOT.md" ] && [ -d "$SNAPSHOT/crates" ] && return 0
  if [ "${POOLWATCH_ADVISORIES:-}" = live ]; then
    [ "$1" = check ] || { say "self-test: no snapshot to copy; the live check stood in for it"; exit 0; }
    say "no snapshot at $SNAPSHOT; checking against the live RustSec database (from GitHub)"
    exec "$CARGO_DENY" --locked check advisories
  fi
  if [ "${CI:-}" = true ]; then
    fail "no RustSec snapshot at $SNAPSHOT (SNAPSHOT.md and crates/): CI does not skip the check." \
      "Set POOLWATCH_ADVISORY_DB to a snapshot, or POOLWATCH_ADVISORIES=live where GitHub is reachable."
  fi
  [ "$1" = check ] || exit 0
  say "NOT CHECKED: no RustSec snapshot at $SNAPSHOT. Run 'make audit' (the live database, from" \
    "GitHub), or set POOLWATCH_ADVISORY_DB to a snapshot of it."
  exit 0
}

mode=${1:-check}
mkdir -p "$WORK"
require_snapshot "$mode"
commit=$(snapshot_field "at commit")
date=$(snapshot_field "committed")
[[ $commit =~ ^[0-9a-f]{40}$ ]] || fail "$SNAPSHOT/SNAPSHOT.md names no commit ('at commit <40 hex digits>')"
[ -n "$date" ] || fail "$SNAPSHOT/SNAPSHOT.md names no date ('committed <ISO 8601 date>')"
days=$(( ($(date +%s) - $(date -d "$date" +%s)) / 86400 ))

# The age cargo-deny accepts offline, as deny.toml says (cargo-deny's default is 90 days).
max_age=$(sed -n 's/^maximum-db-staleness = "\(.*\)".*/\1/p' deny.toml | head -n 1)
max_age=${max_age:-P90D}

case "$mode" in
  check)
    folder=$(db_folder)
    db_path=$(prepared_db "$commit" "$date" "$folder")
    say "RustSec advisory database snapshot $commit of $date ($days days old; deny.toml's" \
      "maximum-db-staleness allows $max_age), offline"
    if ! output=$(check_against "$db_path" 2>&1); then
      echo "$output" >&2
      grep -q "repository is stale" <<<"$output" \
        && fail "the snapshot at $SNAPSHOT is $days days old, older than deny.toml's" \
          "maximum-db-staleness ($max_age): refresh it, or run 'make audit' where GitHub is" \
          "reachable."
      exit 1
    fi
    echo "$output" >&2
    ;;
  self-test)
    folder=$(db_folder)
    db_path=$(prepared_db "$commit" "$date" "$folder")
    # The prepared checkout carries the snapshot's date where cargo-deny reads a database's age.
    want=$(date -d "$date" +%s)
    [ "$(git -C "$db_path/$folder" show -s --format=%ct HEAD)" = "$want" ] \
      && [ "$(stat -c %Y "$db_path/$folder/.git/HEAD")" = "$want" ] \
      || fail "self-test: $db_path/$folder is not dated $date (HEAD commit and .git/HEAD)"
    check_against "$db_path" >/dev/null 2>&1 \
      || fail "self-test: the check fails on the snapshot itself (see 'tests/advisories.sh check')"
    # A crate of the tree, from Cargo.lock, and an advisory for all its versions.
    crate=$(awk '/^name = "itoa"$/ { print "itoa"; exit }' Cargo.lock)
    [ -n "$crate" ] || crate=$(sed -n 's/^name = "\(.*\)"$/\1/p' Cargo.lock | sed -n 2p)
    # The scratch copy is made from the prepared checkout, in target/: the snapshot and the cached
    # checkout are only read.
    fake=$WORK/self-test
    commit_database "$fake/$folder" "$db_path/$folder" "$date"
    advisory=$fake/$folder/crates/$crate/RUSTSEC-2099-0001.md
    mkdir -p "${advisory%/*}"
    cat >"$advisory" <<EOF
\`\`\`toml
[advisory]
id = "RUSTSEC-2099-0001"
package = "$crate"
date = "${date:0:10}"
url = "https://example.invalid/poolwatch-advisories-self-test"
categories = ["memory-corruption"]

[versions]
patched = []
\`\`\`

# A made-up advisory: poolwatch's check of its advisory wiring

Every version of $crate is affected, so the check must fail.
EOF
    commit_dated "$fake/$folder" "$date" "A made-up advisory for $crate"
    if output=$(check_against "$fake" 2>&1); then
      echo "$output" >&2
      fail "self-test: the check passed with a made-up advisory for $crate: it does not read the database"
    fi
    grep -q "RUSTSEC-2099-0001" <<<"$output" \
      || { echo "$output" >&2; fail "self-test: the check failed, but not on the made-up advisory"; }
    # The same database without it, but dated long ago: cargo-deny's staleness guard must refuse it.
    rm "$advisory"
    commit_dated "$fake/$folder" "2000-01-01T00:00:00Z" "The snapshot, dated 2000"
    if output=$(check_against "$fake" 2>&1); then
      echo "$output" >&2
      fail "self-test: the check passed on a database dated 2000: it does not see a database's age"
    fi
    grep -q "repository is stale" <<<"$output" \
      || { echo "$output" >&2; fail "self-test: a database dated 2000 failed, but not as stale"; }
    rm -rf "$fake"
    say "self-test: a made-up advisory for $crate fails the check, and so does a database dated" \
      "2000; the snapshot passes it"
    ;;
  *)
    fail "usage: tests/advisories.sh [check|self-test]"
    ;;
esac
