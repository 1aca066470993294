"""Media decoding for previews, statistics and conversion: pure, synchronous functions (callers run
them in `asyncio.to_thread`) on bytes or a path. PyAV (bundled ffmpeg), soundfile, NumPy and Pillow;
never a shell-out. Anything undecodable raises `MediaError` (a `ValueError`)."""

from mlife_shared.media.audio import (
    BACKGROUND_RGB,
    MARK_ROWS,
    SEGMENT_RGB,
    audio_clip,
    decode_audio,
    spectrogram_png,
    wav_info,
    waveform_png,
)
from mlife_shared.media.errors import MediaError
from mlife_shared.media.image import image_thumbnail, load_tensor, tensor_image, tensor_summary
from mlife_shared.media.info import MAX_IMAGE_PIXELS, MediaInfo, probe
from mlife_shared.media.table import table_preview, text_snippet
from mlife_shared.media.video import (
    frame_times,
    frames_at,
    strip_times,
    video_clip,
    video_frames,
    video_poster,
    video_strip,
)

__all__ = [
    "BACKGROUND_RGB", "MARK_ROWS", "MAX_IMAGE_PIXELS", "SEGMENT_RGB", "MediaError", "MediaInfo",
    "audio_clip", "decode_audio", "frame_times", "frames_at", "image_thumbnail", "load_tensor", "probe",
    "spectrogram_png", "strip_times", "table_preview", "tensor_image", "tensor_summary", "text_snippet",
    "video_clip", "video_frames", "video_poster", "video_strip", "wav_info", "waveform_png",
]
