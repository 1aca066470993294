"""mlife_shared.media on real media made in the test: pixels, lengths and rates are checked."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from mlife_shared import media
from tests.shared.media_factory import VIDEO_COLOURS, close, make_png, make_video, make_wav


def _img(png: bytes) -> Image.Image:
    img = Image.open(io.BytesIO(png))
    assert img.format == "PNG"
    return img.convert("RGB")


def test_probe_tells_image_audio_and_video_apart() -> None:
    image = media.probe(make_png(320, 200))
    assert (image.media_type, image.width, image.height) == ("image", 320, 200)
    audio = media.probe(make_wav(rate=22050, silence=1.0, tone=1.0, channels=2))
    assert (audio.media_type, audio.sample_rate, audio.channels, audio.duration) == ("audio", 22050, 2, 2.0)
    for fmt, codec in (("mp4", "h264"), ("webm", "vp8")):
        video = media.probe(make_video(seconds=3, fps=10, width=64, height=48, fmt=fmt))
        assert (video.media_type, video.fps, video.frame_count, video.width, video.height, video.codec) == (
            "video", 10.0, 30, 64, 48, codec)
        assert video.duration == pytest.approx(3.0, abs=0.11)


def test_undecodable_data_is_a_media_error() -> None:
    for call in (lambda: media.probe(b"just some text"), lambda: media.image_thumbnail(b"\x89PNG broken"),
                 lambda: media.waveform_png(b"RIFF\x00\x00"), lambda: media.video_poster(make_wav())):
        with pytest.raises(media.MediaError):
            call()


def test_image_thumbnail_is_bounded_and_keeps_colours() -> None:
    img = _img(media.image_thumbnail(make_png(320, 200), size=64))
    assert img.size == (64, 40)
    assert close(img.getpixel((5, 20)), (255, 0, 0)) and close(img.getpixel((58, 20)), (0, 0, 255))


def test_a_decompression_bomb_is_refused() -> None:
    out = io.BytesIO()
    Image.new("1", (10_000, 6_000)).save(out, format="PNG")  # 60 M pixels, a few kB
    with pytest.raises(media.MediaError, match="pixels"):
        media.image_thumbnail(out.getvalue())


@pytest.mark.parametrize("shape", [(24, 32), (24, 32, 3), (24, 32, 1), (3, 24, 32), (1, 24, 32), (1, 3, 24, 32),
                                   (1, 24, 32, 4)])
def test_tensor_image_for_image_shapes(shape: tuple[int, ...]) -> None:
    arr = np.zeros(shape, dtype=np.float32)
    arr[...] = 1.0  # floats in 0..1 scale to 255
    buf = io.BytesIO()
    np.save(buf, arr)
    png = media.tensor_image(buf.getvalue())
    assert png is not None
    img = Image.open(io.BytesIO(png))
    assert img.size == (32, 24)
    assert img.convert("L").getpixel((3, 3)) == 255


def test_tensor_image_channels_first_keeps_colour_and_stretches_ranges() -> None:
    arr = np.zeros((3, 8, 8), dtype=np.int32)
    arr[2] = 1000  # blue channel; the range 0..1000 is stretched to 0..255
    img = _img(media.tensor_image(arr) or b"")
    assert img.getpixel((4, 4)) == (0, 0, 255)


@pytest.mark.parametrize("shape", [(10,), (5, 6, 7), (2, 3, 8, 8), (8, 1)])
def test_tensor_image_is_none_for_other_shapes(shape: tuple[int, ...]) -> None:
    assert media.tensor_image(np.ones(shape)) is None
    summary = media.tensor_summary(np.ones(shape))
    assert summary["shape"] == list(shape) and summary["min"] == summary["max"] == 1.0


def test_npz_and_pickles() -> None:
    buf = io.BytesIO()
    np.savez(buf, x=np.arange(12).reshape(3, 4))
    assert media.tensor_summary(buf.getvalue()) == {"shape": [3, 4], "dtype": "int64", "min": 0, "max": 11}
    pickled = io.BytesIO()
    np.save(pickled, np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(media.MediaError):
        media.load_tensor(pickled.getvalue())


@pytest.mark.parametrize("draw", [media.waveform_png, media.spectrogram_png])
def test_audio_picture_marks_the_segment(draw: object) -> None:
    wav = make_wav(rate=22050, silence=1.0, tone=1.0)  # 2 s: x = t / 2 * 800
    img = _img(draw(wav, start=1.0, end=1.5, width=800, height=160))  # type: ignore[operator]
    assert img.size == (800, 160)
    row = [img.getpixel((x, 1)) for x in range(800)]
    marked = [x for x, p in enumerate(row) if p == media.SEGMENT_RGB]
    assert marked[0] == 400 and marked[-1] == 599 and len(marked) == 200
    assert row[399] == row[600] == media.BACKGROUND_RGB


def test_waveform_shows_silence_then_tone() -> None:
    img = _img(media.waveform_png(make_wav(silence=1.0, tone=1.0), width=200, height=100))
    column = lambda x: [img.getpixel((x, y)) for y in range(100)]  # noqa: E731
    assert sum(p != media.BACKGROUND_RGB for p in column(50)) <= 2  # silence: a flat line
    assert sum(p != media.BACKGROUND_RGB for p in column(150)) > 50  # the tone fills the height


def test_spectrogram_has_energy_only_in_the_tone_half() -> None:
    img = _img(media.spectrogram_png(make_wav(silence=1.0, tone=1.0, freq=1000.0), width=200, height=100))
    brightness = lambda x: max(sum(img.getpixel((x, y))) for y in range(10, 100))  # noqa: E731
    assert brightness(150) > brightness(50) + 200


@pytest.mark.parametrize("rate", [None, 8000, 16000, 44100])
def test_audio_clip_cuts_and_resamples(rate: int | None) -> None:
    clip = media.audio_clip(make_wav(rate=22050, silence=1.0, tone=1.0, channels=2), 0.5, 1.75, sample_rate=rate)
    info = media.wav_info(clip)
    expected_rate = rate or 22050
    assert info["sample_rate"] == expected_rate and info["channels"] == 2
    assert abs(info["frames"] - 1.25 * expected_rate) <= 0.01 * expected_rate


def test_audio_clip_rejects_bad_segments() -> None:
    wav = make_wav()
    for start, end in ((1.0, 0.5), (-1.0, 1.0), (5.0, 6.0)):
        with pytest.raises(media.MediaError):
            media.audio_clip(wav, start, end)


@pytest.mark.parametrize("fmt", ["mp4", "webm"])
def test_video_poster_is_the_frame_at_that_time(fmt: str) -> None:
    video = make_video(seconds=4, fps=10, fmt=fmt)
    for at, second in ((0.0, 0), (1.05, 1), (2.5, 2), (3.95, 3), (60.0, 3)):
        img = _img(media.video_poster(video, at=at))
        assert img.size == (64, 48)
        assert close(img.getpixel((32, 24)), VIDEO_COLOURS[second]), (at, img.getpixel((32, 24)))


@pytest.mark.parametrize("fmt", ["mp4", "webm"])
def test_poster_after_a_seek_to_a_key_frame(fmt: str) -> None:
    video = make_video(seconds=10, fps=10, fmt=fmt, gop=10)
    for at, second in ((7.3, 7), (2.0, 2), (9.95, 9), (4.999, 4)):
        img = _img(media.video_poster(video, at=at))
        assert close(img.getpixel((32, 24)), VIDEO_COLOURS[second % len(VIDEO_COLOURS)]), (at, fmt)
    strip = _img(media.video_strip(video, 5.0, 9.0, frames=4, height=48))
    for i in range(4):
        assert close(strip.getpixel((64 * i + 32, 24)), VIDEO_COLOURS[(5 + i) % len(VIDEO_COLOURS)])


def test_video_strip_has_evenly_spaced_frames() -> None:
    video = make_video(seconds=4, fps=10, width=64, height=48)
    img = _img(media.video_strip(video, 0.0, 4.0, frames=4, height=24))
    assert img.size == (4 * 32, 24)
    for i in range(4):
        assert close(img.getpixel((32 * i + 16, 12)), VIDEO_COLOURS[i])


def test_video_frames_at_a_rate() -> None:
    frames = media.video_frames(make_video(seconds=4, fps=10), 1.0, 3.0, fps=2.0)
    assert media.frame_times(1.0, 3.0, 2.0) == [1.0, 1.5, 2.0, 2.5]
    assert len(frames) == 4
    colours = [_img(f).getpixel((32, 24)) for f in frames]
    for colour, second in zip(colours, (1, 1, 2, 2), strict=True):
        assert close(colour, VIDEO_COLOURS[second])


def test_video_clip_is_a_webm_of_the_segment() -> None:
    clip = media.video_clip(make_video(seconds=4, fps=10, fmt="mp4"), 2.0, 3.0)
    assert clip[:4] == b"\x1a\x45\xdf\xa3"
    info = media.probe(clip)
    assert (info.codec, info.frame_count, info.fps) == ("vp8", 10, 10.0)
    assert close(_img(media.video_poster(clip, 0.0)).getpixel((32, 24)), VIDEO_COLOURS[2])


def test_text_and_table_previews_are_plain_strings() -> None:
    snippet = media.text_snippet(b'{"a": "<script>x</script>"}')
    assert snippet == {"kind": "snippet", "snippet": '{\n  "a": "<script>x</script>"\n}', "truncated": False}
    assert media.text_snippet(b"x" * 50, chars=10)["truncated"] is True
    table = media.table_preview(b"a;b\n1;2\n3;4\n5;6\n", rows=2)
    assert table == {"kind": "table", "columns": ["a", "b"], "rows": [["1", "2"], ["3", "4"]], "truncated": True}
    cut = media.table_preview(b"a,b\n1,2\n3,4\n5,", complete=False)
    assert cut["rows"] == [["1", "2"], ["3", "4"]] and cut["truncated"] is True
