#!/usr/bin/env bash
# Recreates assets/web/vendor/ (the browser runtime of the exported demo.html) from the npm registry:
# Transformers.js's bundled build and the one onnxruntime-web wasm binary (+ its loader) it asks for.
# Committed so that the app, a Space and CI work offline; run this only to update the versions.
set -euo pipefail
cd "$(dirname "$0")"
TJS=4.3.2                                   # @huggingface/transformers
ORT=1.31.0-dev.20260914-8d85527a0           # the onnxruntime-web that transformers@$TJS pins
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
(cd "$tmp" && npm pack -q "@huggingface/transformers@$TJS" "onnxruntime-web@$ORT" >/dev/null)
mkdir -p "$tmp/t" "$tmp/o" vendor
tar xzf "$tmp"/huggingface-transformers-*.tgz -C "$tmp/t"
tar xzf "$tmp"/onnxruntime-web-*.tgz -C "$tmp/o"
cp "$tmp/t/package/dist/transformers.min.js" vendor/
cp "$tmp/o/package/dist/ort-wasm-simd-threaded.asyncify.mjs" "$tmp/o/package/dist/ort-wasm-simd-threaded.asyncify.wasm" vendor/
cp "$tmp/t/package/LICENSE" vendor/LICENSE.transformers.js.txt
printf "onnxruntime-web %s: MIT License, Copyright (c) Microsoft Corporation (package.json \"license\": \"%s\")\n" "$ORT" "$(node -p "require('$tmp/o/package/package.json').license" 2>/dev/null || echo MIT)" > vendor/LICENSE.onnxruntime-web.txt
(cd vendor && sha256sum transformers.min.js ort-wasm-simd-threaded.asyncify.mjs ort-wasm-simd-threaded.asyncify.wasm > SHA256SUMS)
echo "vendor/: @huggingface/transformers@$TJS, onnxruntime-web@$ORT"; du -sh vendor
