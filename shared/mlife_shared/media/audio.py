"""Audio: decoding to samples, a waveform or spectrogram picture with a segment marked, a WAV clip.

The segment mark, in both pictures: the top `MARK_ROWS` rows are `SEGMENT_RGB` exactly from x(start)
to x(end) and `BACKGROUND_RGB` elsewhere; in the waveform the whole band behind the wave is
`SEGMENT_RGB` too. x(t) = round(t / duration * width)."""

from __future__ import annotations

import io
from typing import TYPE_CHECKING, Any

from mlife_shared.media.errors import MediaError
from mlife_shared.media.source import MAX_DECODE_SECONDS, Source, check_segment, open_container

if TYPE_CHECKING:
    import numpy as np
    from PIL import Image

SEGMENT_RGB = (255, 210, 80)
BACKGROUND_RGB = (255, 255, 255)
WAVE_RGB = (31, 78, 121)
MARK_ROWS = 6


def decode_audio(data: Source, start: float = 0.0, end: float | None = None,
                 sample_rate: int | None = None) -> tuple[np.ndarray, int, float]:
    """(samples as float32 frames x channels, sample rate, duration of the whole file) of [start, end)."""
    import av
    import numpy as np
    with open_container(data) as c:
        if not c.streams.audio:
            raise MediaError("the file has no audio stream")
        stream = c.streams.audio[0]
        rate = int(sample_rate or stream.rate)
        channels = int(stream.channels) or 1
        resampler = av.AudioResampler(format="flt", layout=stream.layout.name, rate=rate)
        chunks: list[np.ndarray] = []
        total = 0
        limit = int(MAX_DECODE_SECONDS * rate)
        for frame in c.decode(stream):
            frame.pts = None  # the resampler keeps its own clock; source timestamps may not start at 0
            for out in resampler.resample(frame):
                chunks.append(out.to_ndarray().reshape(-1, channels))
                total += out.samples
            if total > limit:
                raise MediaError(f"the audio is longer than {MAX_DECODE_SECONDS:.0f} s")
        for out in resampler.resample(None):
            chunks.append(out.to_ndarray().reshape(-1, channels))
    samples = np.concatenate(chunks) if chunks else np.zeros((0, channels), dtype=np.float32)
    duration = len(samples) / rate
    a = round(start * rate)
    b = len(samples) if end is None else round(end * rate)
    return samples[a:b], rate, duration


def _x(t: float, duration: float, width: int) -> int:
    return max(0, min(width, round(t / duration * width))) if duration > 0 else 0


def _mark(img: Image.Image, start: float | None, end: float | None, duration: float, full_band: bool) -> None:
    from PIL import ImageDraw
    if start is None and end is None:
        return
    x0 = _x(start or 0.0, duration, img.width)
    x1 = _x(duration if end is None else end, duration, img.width)
    draw = ImageDraw.Draw(img)
    draw.rectangle((x0, 0, max(x0, x1 - 1), (img.height if full_band else MARK_ROWS) - 1), fill=SEGMENT_RGB)


def waveform_png(data: Source, start: float | None = None, end: float | None = None,
                 width: int = 800, height: int = 160) -> bytes:
    """The whole recording's waveform (min/max per column), the segment [start, end] shaded."""
    import numpy as np
    from PIL import Image, ImageDraw
    if start is not None or end is not None:
        check_segment(start, end)
    samples, _rate, duration = decode_audio(data)
    mono = samples.mean(axis=1) if samples.size else np.zeros(1, dtype=np.float32)
    img = Image.new("RGB", (width, height), BACKGROUND_RGB)
    _mark(img, start, end, duration, full_band=True)
    draw = ImageDraw.Draw(img)
    mid, amp = height / 2, (height / 2 - MARK_ROWS - 2)
    edges = np.linspace(0, len(mono), width + 1).astype(int)
    for x in range(width):
        col = mono[edges[x]:max(edges[x + 1], edges[x] + 1)]
        if col.size == 0:
            continue
        lo, hi = float(np.clip(col.min(), -1, 1)), float(np.clip(col.max(), -1, 1))
        draw.line((x, mid - hi * amp, x, mid - lo * amp), fill=WAVE_RGB)
    return _png(img)


def _colormap(v: np.ndarray) -> np.ndarray:
    """0..1 to a dark-blue → magenta → yellow ramp (uint8 RGB)."""
    import numpy as np
    stops = np.array([[0, 0, 30], [80, 20, 120], [200, 50, 100], [250, 150, 40], [250, 250, 160]], float)
    pos = np.clip(v, 0, 1) * (len(stops) - 1)
    i = np.minimum(pos.astype(int), len(stops) - 2)
    f = (pos - i)[..., None]
    rgb: np.ndarray = (stops[i] * (1 - f) + stops[i + 1] * f).astype(np.uint8)
    return rgb


def spectrogram_png(data: Source, start: float | None = None, end: float | None = None,
                    width: int = 800, height: int = 160, n_fft: int = 512) -> bytes:
    """A log-magnitude spectrogram (low frequencies at the bottom); the segment marked on the top rows."""
    import numpy as np
    from PIL import Image, ImageDraw
    if start is not None or end is not None:
        check_segment(start, end)
    samples, _rate, duration = decode_audio(data)
    mono = samples.mean(axis=1) if samples.size else np.zeros(0, dtype=np.float32)
    if len(mono) < n_fft:
        mono = np.pad(mono, (0, n_fft - len(mono)))
    hop = max(1, (len(mono) - n_fft) // max(1, width - 1))
    starts = np.arange(0, len(mono) - n_fft + 1, hop)[: width * 4]
    window = np.hanning(n_fft).astype(np.float32)
    frames = np.stack([mono[s:s + n_fft] * window for s in starts])
    mag = np.abs(np.fft.rfft(frames, axis=1)).T  # freq x time
    db = 20 * np.log10(mag + 1e-6)
    top = float(db.max())
    norm = np.clip((db - (top - 80.0)) / 80.0, 0, 1)
    img = Image.fromarray(_colormap(norm[::-1])).resize((width, height), Image.Resampling.BILINEAR)
    draw = ImageDraw.Draw(img)
    draw.rectangle((0, 0, width - 1, MARK_ROWS - 1), fill=BACKGROUND_RGB)
    _mark(img, start, end, duration, full_band=False)
    return _png(img)


def audio_clip(data: Source, start: float, end: float, sample_rate: int | None = None) -> bytes:
    """A 16-bit PCM WAV of [start, end), resampled to `sample_rate` when given."""
    import soundfile  # type: ignore[import-untyped]
    s, e = check_segment(start, end)
    if sample_rate is not None and not 1000 <= sample_rate <= 384_000:
        raise MediaError(f"sample_rate must be within 1000..384000 Hz (got {sample_rate})")
    samples, rate, duration = decode_audio(data, s, e, sample_rate)
    if s >= duration:
        raise MediaError(f"the segment starts at {s} s, after the recording's end ({duration:.3f} s)")
    out = io.BytesIO()
    soundfile.write(out, samples, rate, format="WAV", subtype="PCM_16")
    return out.getvalue()


def _png(img: Image.Image) -> bytes:
    out = io.BytesIO()
    img.save(out, format="PNG")
    return out.getvalue()


def wav_info(data: bytes) -> dict[str, Any]:
    """Sample rate, channels and frames of a WAV (what a converted clip is)."""
    import soundfile
    with soundfile.SoundFile(io.BytesIO(data)) as f:
        return {"sample_rate": int(f.samplerate), "channels": int(f.channels), "frames": int(f.frames)}
