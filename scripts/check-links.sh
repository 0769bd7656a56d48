#!/usr/bin/env bash
# Checks the relative links of README.md, ARCHITECTURE.md and docs/*.md:
# each must name a file inside the repository, and a `#anchor` on a
# Markdown file must name one of its headings (GitHub's rule: lower case,
# punctuation dropped, spaces as hyphens). Links to http(s) and mailto are
# not followed. The repository stands on its own: nothing may point out of it.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd -P)

# The anchors of a Markdown file's headings, one a line.
anchors() {
  awk '/^```/ { fence = !fence; next } !fence && /^#+ / { sub(/^#+ +/, ""); print }' "$1" |
    tr '[:upper:]' '[:lower:]' | sed -e 's/[^a-z0-9 _-]//g' -e 's/ /-/g'
}

# The link targets of a Markdown file, outside code fences and code
# spans: inline `[text](target)` and reference `[name]: target`.
targets() {
  awk '/^```/ { fence = !fence; next } !fence { print }' "$1" |
    sed -e 's/`[^`]*`//g' |
    grep -oE '\]\([^) ]+\)|^\[[^]]+\]: *[^ ]+' |
    sed -E -e 's/^\]\(//' -e 's/\)$//' -e 's/^\[[^]]+\]: *//'
}

bad=0
for doc in README.md ARCHITECTURE.md docs/*.md; do
  [ -f "$doc" ] || continue
  dir=$(dirname "$doc")
  while IFS= read -r link; do
    case "$link" in http://* | https://* | mailto:*) continue ;; esac
    path=${link%%#*}
    anchor=""
    [ "$path" = "$link" ] || anchor=${link#*#}
    if [ -z "$path" ]; then
      file=$doc
    else
      file=$(realpath -m "$dir/$path")
      case "$file" in
        "$root"/*) ;;
        *)
          echo "$doc: $link: points outside the repository" >&2
          bad=1
          continue
          ;;
      esac
      if [ ! -e "$file" ]; then
        echo "$doc: $link: no such file" >&2
        bad=1
        continue
      fi
    fi
    if [ -n "$anchor" ] && [[ "$file" == *.md ]]; then
      headings=$(anchors "$file")
      if ! grep -qxF -- "$anchor" <<<"$headings"; then
        echo "$doc: $link: no heading for #$anchor" >&2
        bad=1
      fi
    fi
  done < <(targets "$doc")
done
if [ "$bad" != 0 ]; then
  echo "check-links: broken links (see above)" >&2
  exit 1
fi
echo "check-links: ok"
