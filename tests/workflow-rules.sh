#!/usr/bin/env bash
# The rules a GitHub Actions workflow of this repository must keep, which actionlint does not check.
# `make workflow-lint` runs it after actionlint. A workflow's jobs hold tokens that push images and
# sign them, so:
#   - every `uses:` names a full 40-hex commit, with its release tag in a comment
#     (`owner/repo@<commit> # vX.Y.Z`): a tag can be moved to other code, a commit cannot;
#     `./local` actions are the repository's own, `docker://` images must name a sha256 digest;
#   - every actions/checkout step sets `persist-credentials: false`, or the job's token stays in
#     .git/config for every later step, and every build script, to read;
#   - the workflow sets top-level `permissions:` to `{}` or read-only scopes, so that only the jobs
#     that say so get write scopes.
# It reads the block-style YAML these workflows are written in, line by line, and fails closed: a
# `uses:` it cannot read as a pin is reported. Usage: workflow-rules.sh [FILE...] (default: every
# workflow in .github/workflows).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

if [ $# -eq 0 ]; then
  shopt -s nullglob
  set -- .github/workflows/*.yaml .github/workflows/*.yml
  [ $# -gt 0 ] || { echo "workflow-rules: no workflows in .github/workflows" >&2; exit 1; }
fi

# POSIX awk only (mawk has no regex intervals, so lengths are counted).
awk '
function fail(line, msg) { printf "%s:%s %s\n", file, line ? line ":" : "", msg; failures++ }
function indent_of(s) { match(s, /^ */); return RLENGTH }
function hex_of_length(s, n) { return length(s) == n && s !~ /[^0-9a-f]/ }
function end_step() {
  if (step_open && step_checkout && !step_persist)
    fail(step_checkout, "actions/checkout without `persist-credentials: false` under `with:`: the token would stay in .git/config for every later step")
  step_open = 0
}
function end_file() {
  end_step()
  if (!top_permissions)
    fail(0, "no top-level `permissions:`: set `permissions: {}` and give each job only the scopes it needs")
}
function check_uses(value, comment, line,    at, ref, name) {
  gsub(/^["\047]|["\047]$/, "", value)
  if (value ~ /^\.\//) return
  if (value ~ /^docker:\/\//) {
    at = index(value, "@sha256:")
    if (!at || !hex_of_length(substr(value, at + 8), 64))
      fail(line, "`" value "` is not pinned: name the image by digest, `docker://IMAGE@sha256:<digest>`")
    return
  }
  at = index(value, "@")
  name = at ? substr(value, 1, at - 1) : value
  ref = at ? substr(value, at + 1) : ""
  if (!hex_of_length(ref, 40))
    fail(line, "`" value "` is not pinned: use `" name "@<40-hex commit> # vX.Y.Z`, the commit of the release tag (`git rev-parse \"vX.Y.Z^{commit}\"`)")
  else if (comment !~ /^v[0-9]+\.[0-9]+\.[0-9]+/)
    fail(line, "`" value "` has no tag comment: end the line with `# vX.Y.Z`, the release tag that commit is")
}
FNR == 1 {
  if (NR > 1) end_file()
  file = FILENAME
  top_permissions = 0; in_top_permissions = 0; scalar_indent = -1; step_open = 0
}
{
  line = $0
  sub(/\r$/, "", line)
  # Blank and comment lines end nothing; the lines of a block scalar (a `run: |` script) are text.
  if (line ~ /^[ \t]*(#.*)?$/) next
  indent = indent_of(line)
  if (scalar_indent >= 0) { if (indent > scalar_indent) next; scalar_indent = -1 }
  key_column = indent
  if (line ~ /^ *- /) key_column = indent + 2

  # Top-level permissions: `{}`, `read-all`, or a block of read/none scopes.
  if (indent == 0) in_top_permissions = 0
  if (line ~ /^permissions:/) {
    top_permissions = 1
    value = line; sub(/^permissions: */, "", value); sub(/ *#.*$/, "", value)
    if (value == "") in_top_permissions = 1
    else if (value != "{}" && value != "read-all")
      fail(FNR, "top-level `permissions: " value "`: use `{}` (or read scopes) and give write scopes to the jobs that need them")
  } else if (in_top_permissions) {
    value = line; sub(/^ *[a-z-]+: */, "", value); sub(/ *#.*$/, "", value)
    if (value != "read" && value != "none")
      fail(FNR, "top-level permission `" substr(line, indent + 1) "`: write scopes belong to the job that needs them")
  }

  # A list item opens a step (or a matrix entry) and runs until a line no deeper than its dash;
  # deeper list items belong to it.
  if (step_open && indent <= step_indent) end_step()
  if (!step_open && line ~ /^ *- /) {
    step_open = 1; step_indent = indent; step_checkout = 0; step_persist = 0
  }

  if (match(line, /^ *(- )?uses:/)) {
    rest = substr(line, RLENGTH + 1)
    comment = ""
    if (match(rest, / +#/)) { comment = substr(rest, RSTART + RLENGTH); rest = substr(rest, 1, RSTART - 1) }
    sub(/^ +/, "", rest); sub(/ +$/, "", rest); sub(/^ +/, "", comment)
    check_uses(rest, comment, FNR)
    if (rest ~ /^["\047]?actions\/checkout@/) step_checkout = FNR
  } else if (line ~ /uses:/ && line !~ /^ *#/) {
    fail(FNR, "`uses:` in a form this check cannot read: write it as its own `uses: owner/repo@<commit> # vX.Y.Z` line")
  }
  if (line ~ /^ *persist-credentials: *(false|"false"|\047false\047) *(#.*)?$/) step_persist = 1

  if (line ~ /: *[|>][-+0-9]* *(#.*)?$/) scalar_indent = key_column
}
END {
  if (NR > 0) end_file()
  if (failures) { printf "workflow-rules: %d problem(s)\n", failures; exit 1 }
}
' "$@"
