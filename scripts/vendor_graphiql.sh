#!/usr/bin/env bash
# Refreshes the browser files GraphiQL needs, so /graphql works with no internet:
# `npm pack` of each pinned package (npm's configured registry), just the files the page
# loads copied to static/vendor/<package>@<version>/, each package's license beside them,
# and static/vendor/MANIFEST.txt (package, version, file, sha256, license).
# After changing a pin here, change the same version in web/graphiql.py (VENDOR).
set -euo pipefail

# The pins. React 18 is the last React with UMD builds. graphiql 3.9.0 is the last 3.x
# (UMD graphiql.min.js + graphiql.min.css; @graphiql/react 0.29); @graphiql/plugin-explorer
# 3.2.6 is the last 3.x and needs exactly that @graphiql/react (^0.29). graphql-ws 5.16.2 is
# the last 5.x, with umd/graphql-ws.min.js (the `graphqlWs` global).
REACT=18.3.1
REACT_DOM=18.3.1
GRAPHIQL=3.9.0
PLUGIN_EXPLORER=3.2.6
GRAPHQL_WS=5.16.2

# package@version, then the files the page needs, relative to the package root.
PACKAGES=(
  "react@$REACT umd/react.production.min.js"
  "react-dom@$REACT_DOM umd/react-dom.production.min.js"
  "graphiql@$GRAPHIQL graphiql.min.js graphiql.min.css"
  "@graphiql/plugin-explorer@$PLUGIN_EXPLORER dist/index.umd.js dist/style.css"
  "graphql-ws@$GRAPHQL_WS umd/graphql-ws.min.js"
)

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
VENDOR="$ROOT/static/vendor"
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT
OUT="$WORK/vendor"
mkdir -p "$OUT"

json_field() { # json_field FILE FIELD: a top-level string field of a package.json
  node -e 'const p = require(process.argv[1]); process.stdout.write(String(p[process.argv[2]] ?? ""))' \
    "$1" "$2"
}

for entry in "${PACKAGES[@]}"; do
  read -r spec files <<<"$entry"
  name="${spec%@*}"
  version="${spec##*@}"
  unpacked="$WORK/pkg/$spec"
  mkdir -p "$unpacked" "$WORK/tgz/$spec"
  (cd "$WORK" && npm pack --silent --pack-destination "$WORK/tgz/$spec" "$spec" >/dev/null)
  tar -xzf "$WORK/tgz/$spec"/*.tgz -C "$unpacked"
  package="$unpacked/package"
  [[ "$(json_field "$package/package.json" version)" == "$version" ]] \
    || { echo "npm pack $spec gave another version" >&2; exit 1; }
  license="$(json_field "$package/package.json" license)"
  dest="$OUT/$spec"
  for file in $files; do
    [[ -f "$package/$file" ]] || { echo "$spec has no $file" >&2; exit 1; }
    mkdir -p "$dest/$(dirname "$file")"
    cp "$package/$file" "$dest/$file"
  done
  license_file="$(find "$package" -maxdepth 1 -type f -iname 'licen[cs]e*' | sort | head -n 1)"
  if [[ -n "$license_file" ]]; then
    cp "$license_file" "$dest/LICENSE"
  elif [[ "$name" == "@graphiql/plugin-explorer" ]]; then
    # It ships no license text; it lives in the same repository as graphiql (graphql/graphiql,
    # MIT), whose LICENSE graphiql's own package carries.
    {
      echo "$spec ships no license file; its package.json declares \"$license\"."
      echo "Below: the LICENSE of its repository (graphql/graphiql), as shipped in graphiql@$GRAPHIQL."
      echo
      cat "$OUT/graphiql@$GRAPHIQL/LICENSE"
    } >"$dest/LICENSE"
  else
    echo "$spec ships no license file" >&2
    exit 1
  fi
  echo "$spec" >>"$WORK/specs"
done

# The page must load nothing from elsewhere: no stylesheet imports, no remote url().
if find "$OUT" -name '*.css' -exec grep -E -l '@import|url\((["'"'"']?)(https?:)?//' {} +; then
  echo "a vendored stylesheet loads something from another host" >&2
  exit 1
fi

{
  echo "# Browser files of GraphiQL, served from /static/vendor/. Written by"
  echo "# scripts/vendor_graphiql.sh from npm packages: do not edit by hand."
  printf '# %s\t%s\t%s\t%s\t%s\n' package version file sha256 license
  while read -r spec; do
    name="${spec%@*}"
    version="${spec##*@}"
    license="$(json_field "$WORK/pkg/$spec/package/package.json" license)"
    (cd "$OUT" && find "$spec" -type f | LC_ALL=C sort) | while read -r file; do
      sum="$(sha256sum "$OUT/$file" | cut -d' ' -f1)"
      printf '%s\t%s\t%s\t%s\t%s\n' "$name" "$version" "$file" "$sum" "$license"
    done
  done <"$WORK/specs"
} >"$OUT/MANIFEST.txt"

rm -rf "$VENDOR"
mkdir -p "$(dirname "$VENDOR")"
cp -R "$OUT" "$VENDOR"
echo "static/vendor: $(wc -l <"$WORK/specs") packages, manifest in static/vendor/MANIFEST.txt"
