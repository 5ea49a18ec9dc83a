#!/usr/bin/env bash
# Vendor the pinned uPlot (the dashboard's chart library) into the layer: `make vendor-uplot`.
#
# The built files are committed (layers/common/xengage/http_api/static/) so that building or testing the layer needs
# no npm; this script is how they got there and how they are upgraded. It refuses a tarball whose sha512 is not the
# pinned integrity, and a pin the registry itself does not report for that version.
set -euo pipefail

version="${UPLOT_VERSION:?set UPLOT_VERSION}"
integrity="${UPLOT_INTEGRITY:?set UPLOT_INTEGRITY (npm view uplot@VERSION dist.integrity)}"
dest="${UPLOT_DEST:?set UPLOT_DEST}"
python="${PYTHON:-python3}"

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

registry_integrity="$(npm view "uplot@${version}" dist.integrity)"
if [ "$registry_integrity" != "$integrity" ]; then
	echo "uplot@${version}: the registry reports ${registry_integrity}, the pin is ${integrity}" >&2
	exit 1
fi
tarball="$(cd "$work" && npm pack "uplot@${version}" --silent --ignore-scripts)"
actual="sha512-$("$python" -c 'import base64, hashlib, sys; print(base64.b64encode(hashlib.sha512(open(sys.argv[1], "rb").read()).digest()).decode())' "$work/$tarball")"
if [ "$actual" != "$integrity" ]; then
	echo "uplot@${version}: the tarball's integrity is ${actual}, the pin is ${integrity}" >&2
	exit 1
fi
tar -xzf "$work/$tarball" -C "$work" package/dist/uPlot.iife.min.js package/dist/uPlot.min.css package/LICENSE
mkdir -p "$dest"
cp "$work/package/dist/uPlot.iife.min.js" "$work/package/dist/uPlot.min.css" "$dest/"
cp "$work/package/LICENSE" "$dest/uPlot.LICENSE"
{
	echo "# Written by tools/vendor_uplot.sh (make vendor-uplot): the npm package these files come from, checked"
	echo "# against the pinned integrity, and each file's sha256 (tests/api/test_dashboard.py compares them)."
	echo "package uplot@${version}"
	echo "integrity ${integrity}"
	for file in uPlot.iife.min.js uPlot.min.css uPlot.LICENSE; do
		echo "sha256 ${file} $(sha256sum "$dest/$file" | cut -d' ' -f1)"
	done
} > "$dest/VENDORED.txt"
echo "vendored uplot@${version} into ${dest}"
