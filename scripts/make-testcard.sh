#!/usr/bin/env bash
# Regenerates src/portkit/host/data/testcard.webm, the video `portkit serve` shows with no
# configuration: ffmpeg's built-in test pattern, 4 s, 320x240, 25 fps, VP8 in WebM, a
# keyframe every second so a browser can seek anywhere. Shipped so that the demo needs no
# ffmpeg on the user's machine.
set -euo pipefail
cd "$(dirname "$0")/.."
ffmpeg -nostdin -loglevel error -y -f lavfi -i "testsrc=duration=4:size=320x240:rate=25" \
  -c:v libvpx -b:v 300k -g 25 -fflags +bitexact -flags:v +bitexact \
  src/portkit/host/data/testcard.webm
ls -l src/portkit/host/data/testcard.webm
