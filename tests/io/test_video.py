import cv2
import numpy as np
import pytest

from partus.errors import InputError
from partus.io import iter_video_frames, video_info


def write_video(path, n_frames=7, size=(48, 32), fourcc="MJPG", fps=12.0):
    """Frame i is uniform gray 30 * i (BGR), so frames are identifiable after lossy coding."""
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*fourcc), fps, size)
    assert writer.isOpened()
    for i in range(n_frames):
        writer.write(np.full((size[1], size[0], 3), 30 * i, np.uint8))
    writer.release()
    return path


@pytest.fixture
def video(tmp_path):
    return write_video(tmp_path / "clip.avi")


def test_video_info(video):
    info = video_info(video)
    assert (info.frame_count, info.width, info.height) == (7, 48, 32)
    assert info.fps == pytest.approx(12.0)


def test_all_frames_gray_uint8(video):
    frames = list(iter_video_frames(video))
    assert [i for i, _ in frames] == list(range(7))
    for i, frame in frames:
        assert frame.shape == (32, 48) and frame.dtype == np.uint8
        assert abs(float(frame.mean()) - 30 * i) < 3


def test_step(video):
    frames = list(iter_video_frames(video, step=3))
    assert [i for i, _ in frames] == [0, 3, 6]
    assert abs(float(frames[2][1].mean()) - 180) < 3


def test_mp4(tmp_path):
    path = write_video(tmp_path / "clip.mp4", n_frames=3, fourcc="mp4v")
    assert len(list(iter_video_frames(path))) == 3


@pytest.mark.parametrize("step", [0, -1, 1.5, True, "2"])
def test_bad_step(video, step):
    with pytest.raises(InputError, match="step: must be a positive integer"):
        iter_video_frames(video, step=step)


def test_missing_file_raises_at_call(tmp_path):
    with pytest.raises(InputError, match=r"none\.avi: file not found"):
        iter_video_frames(tmp_path / "none.avi")
    with pytest.raises(InputError, match=r"none\.avi: file not found"):
        video_info(tmp_path / "none.avi")


def test_not_a_video(tmp_path):
    path = tmp_path / "text.avi"
    path.write_text("not a video at all" * 50)
    with pytest.raises(InputError, match=r"text\.avi: (cannot be opened as a video|video has no decodable frames)"):
        iter_video_frames(path)
    with pytest.raises(InputError, match=r"text\.avi: (cannot be opened as a video|video has no decodable frames)"):
        video_info(path)


def test_no_frames(tmp_path):
    path = write_video(tmp_path / "empty.avi", n_frames=0)
    if not path.exists() or path.stat().st_size == 0:
        pytest.skip("this OpenCV build writes no file for a video without frames")
    with pytest.raises(InputError, match=r"empty\.avi: (video has no decodable frames|cannot be opened)"):
        iter_video_frames(path)
