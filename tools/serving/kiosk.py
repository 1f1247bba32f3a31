"""Kiosk mode: a camera wired to the server (the original's design), read with OpenCV.

Off by default: for remote users the browser's own camera (the web page) is the right one.
`source` is an OpenCV camera index ("0") or a video file/stream URL, which also lets tests run
this path without a camera.
"""

import threading
import time

from tools.errors import GarbageError


class CameraError(GarbageError, OSError):
    """The server camera cannot be opened or read."""


class ServerCamera:
    def __init__(self, source):
        import cv2  # OpenCV only in kiosk mode: the server does not load it otherwise

        self.cv2 = cv2
        src = int(source) if str(source).isdigit() else str(source)
        self.cap = cv2.VideoCapture(src)
        if not self.cap.isOpened():
            raise CameraError(f"cannot open server camera {source!r} (no such device or file?); "
                              "leave out --server_camera to use the browser's camera instead")
        self.source = source
        self._lock = threading.Lock()

    def read(self):
        with self._lock:
            ok, frame = self.cap.read()
            if not ok and not str(self.source).isdigit():  # a video file: loop it
                self.cap.set(self.cv2.CAP_PROP_POS_FRAMES, 0)
                ok, frame = self.cap.read()
        if not ok:
            raise CameraError(f"server camera {self.source!r} gave no frame")
        return frame

    def snapshot_jpeg(self):
        ok, buf = self.cv2.imencode(".jpg", self.read(), [self.cv2.IMWRITE_JPEG_QUALITY, 90])
        if not ok:
            raise CameraError("could not encode the camera frame")
        return buf.tobytes()

    def mjpeg(self, fps=15, max_frames=None):
        """multipart/x-mixed-replace stream of JPEG frames."""
        n = 0
        while max_frames is None or n < max_frames:
            try:
                jpeg = self.snapshot_jpeg()
            except CameraError:
                return
            yield b"--frame\r\nContent-Type: image/jpeg\r\n\r\n" + jpeg + b"\r\n"
            n += 1
            time.sleep(1.0 / fps)
