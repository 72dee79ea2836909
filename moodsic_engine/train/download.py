"""A resumable, rate-limited FindingEmo image downloader.

Every image is tried at its published URLs in order; the first that returns a decodable
image wins. Outcomes go to `downloads.jsonl` in the image folder (one JSON object per
line, appended as we go), so an interrupted run resumes where it stopped, images already
on disk are never fetched again, and links found dead are skipped unless asked to retry.
"""

from __future__ import annotations

import io
import json
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from ..fileio import write_bytes_atomic
from ..progress import ProgressFn, no_progress
from .findingemo import local_path

RECORD = "downloads.jsonl"
USER_AGENT = (
    "moodsic-findingemo-downloader/0.1 (research; +https://pypi.org/project/findingemo-light/)"
)
MAX_BYTES = 40 * 1024 * 1024

Fetcher = Callable[[str, float], bytes]


def _http_get(url: str, timeout: float) -> bytes:
    if not url.startswith(("http://", "https://")):
        raise ValueError("not an http(s) URL")
    req = urllib.request.Request(url, headers={"User-Agent": USER_AGENT})  # noqa: S310 - scheme checked
    with urllib.request.urlopen(req, timeout=timeout) as resp:  # noqa: S310
        data = resp.read(MAX_BYTES + 1)
    if len(data) > MAX_BYTES:
        raise ValueError("larger than 40 MB")
    return data


def _is_image(data: bytes) -> bool:
    from PIL import Image

    try:
        with Image.open(io.BytesIO(data)) as img:
            img.verify()
        return True
    except Exception:  # noqa: BLE001 - anything PIL rejects is not an image for us
        return False


def read_records(images_root: Path) -> dict[str, dict]:
    """Last outcome per rel_path from the record file (a torn last line is ignored)."""
    path = images_root / RECORD
    out: dict[str, dict] = {}
    if not path.is_file():
        return out
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            rec = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(rec, dict) and "rel_path" in rec:
            out[str(rec["rel_path"])] = rec
    return out


@dataclass(frozen=True)
class DownloadSummary:
    requested: int
    present: int  # already on disk before this run
    downloaded: int
    dead: int  # every URL failed (this run or recorded earlier)
    requests: int  # HTTP requests made in this run

    def line(self) -> str:
        return (
            f"images: {self.requested} requested, {self.present} already present, {self.downloaded} downloaded, "
            f"{self.dead} dead links skipped ({self.requests} requests)"
        )


class _RateLimiter:
    def __init__(
        self, per_second: float, clock: Callable[[], float], sleep: Callable[[float], None]
    ) -> None:
        self.gap = 1.0 / per_second if per_second > 0 else 0.0
        self.clock = clock
        self.sleep = sleep
        self.next_t = 0.0

    def wait(self) -> None:
        now = self.clock()
        if now < self.next_t:
            self.sleep(self.next_t - now)
            now = self.next_t
        self.next_t = now + self.gap


def download_images(
    rel_paths: Iterable[str],
    urls: dict[str, list[str]],
    images_root: str | Path,
    *,
    rate_per_s: float = 2.0,
    timeout_s: float = 15.0,
    retry_dead: bool = False,
    limit: int | None = None,
    fetcher: Fetcher | None = None,
    progress: ProgressFn = no_progress,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> DownloadSummary:
    """Fetch the images not yet on disk, at most `rate_per_s` requests per second."""
    root = Path(images_root)
    root.mkdir(parents=True, exist_ok=True)
    fetch = fetcher or _http_get
    limiter = _RateLimiter(rate_per_s, clock, sleep)
    records = read_records(root)
    wanted = list(dict.fromkeys(rel_paths))
    if limit is not None:
        wanted = wanted[:limit]
    present = downloaded = dead = requests = 0
    with (root / RECORD).open("a", encoding="utf-8") as log:
        for i, rel in enumerate(wanted):
            progress("download", i, len(wanted))
            dest = local_path(root, rel)
            if dest.is_file() and dest.stat().st_size > 0:
                present += 1
                continue
            rec = records.get(rel)
            if rec and rec.get("status") == "dead" and not retry_dead:
                dead += 1
                continue
            errors = []
            got = None
            for url in urls.get(rel, []):
                limiter.wait()
                requests += 1
                try:
                    data = fetch(url, timeout_s)
                except (urllib.error.URLError, OSError, ValueError) as exc:
                    errors.append(f"{url}: {str(exc)[:120]}")
                    continue
                if not _is_image(data):
                    errors.append(f"{url}: not an image")
                    continue
                got = (url, data)
                break
            if got is None:
                dead += 1
                entry = {"rel_path": rel, "status": "dead", "errors": errors or ["no URL listed"]}
            else:
                write_bytes_atomic(dest, got[1])
                downloaded += 1
                entry = {"rel_path": rel, "status": "ok", "url": got[0], "bytes": len(got[1])}
            entry["time"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
            log.write(json.dumps(entry) + "\n")
            log.flush()
        progress("download", len(wanted), len(wanted))
    return DownloadSummary(len(wanted), present, downloaded, dead, requests)
