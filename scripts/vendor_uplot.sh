#!/usr/bin/env sh
# The console's Insights page draws its charts with uPlot (MIT, https://github.com/leeoniya/uPlot):
# its minified build is vendored in bot/adapters/web/vendor/ and inlined into the page (its hash in
# the page's Content-Security-Policy), so the page loads nothing from elsewhere. This refreshes it.
set -eu
VERSION="${1:-1.6.32}"
SHA256="4b8a8191e425658e3ea8c8c1314b0fc679c861ee3a1af2b20c7b16ba50b5133d"  # of uplot-1.6.32.tgz
here="$(cd "$(dirname "$0")/.." && pwd)"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
cd "$work"
npm pack "uplot@$VERSION" >/dev/null
if [ "$VERSION" = "1.6.32" ]; then echo "$SHA256  uplot-$VERSION.tgz" | sha256sum -c -; fi
tar xzf "uplot-$VERSION.tgz"
cp package/dist/uPlot.iife.min.js package/dist/uPlot.min.css "$here/bot/adapters/web/vendor/"
cp package/LICENSE "$here/bot/adapters/web/vendor/uPlot.LICENSE"
echo "uPlot $VERSION vendored"
