"""Getting verified files into the cache: from a mirror, upstream, or an import.

:class:`_Fetching` is the half of :class:`edgepose.registry.ModelStore` that
copies and downloads: a mirror folder or base URL, the upstream URL, a file
(or published zip) the user imports. Every file goes to a temporary file in
the cache, is hashed while it is copied, checked against the pinned (or
imported) sha256, then renamed into place: a partial or wrong file never
lands in the cache. It is mixed into ``ModelStore``, whose configuration
(``models_dir``, ``mirror_dir``, ``mirror_url``, ``offline``, ``timeout``,
``registry``) and pin and verification methods it uses.

Every download goes through :func:`_urlopen` (one place, so that tests can
forbid the internet).
"""
from __future__ import annotations

import hashlib
import http.client
import logging
import os
import time
import urllib.error
import urllib.parse
import urllib.request
import zipfile
from pathlib import Path
from typing import BinaryIO, Callable

from edgepose._files import create_temp, sha256_file, sha256_stream
from edgepose.registry.catalog import (MIRROR_ENV, MODEL_DIR_ENV, OFFLINE_ENV,
                                       HashMismatchError, ModelEntry, ModelNotFoundError,
                                       ModelRegistry, ResolvedModel, UnverifiedModelError)

__all__ = ["ProgressFn"]

log = logging.getLogger(__name__)

#: ``progress(bytes_done, bytes_total_or_None)``, called while a file is fetched
#: (at most every 0.05 s, and once at the end); :class:`edgepose.progress.ProgressBar` is one.
ProgressFn = Callable[[int, "int | None"], None]

_CHUNK = 1 << 16


def _copy_hashing(src: BinaryIO, dst: BinaryIO, total: int | None,
                  progress: ProgressFn | None) -> tuple[str, int]:
    digest, done = hashlib.sha256(), 0
    last = 0.0
    if progress is not None:
        progress(0, total)
    while True:
        chunk = src.read(_CHUNK)
        if not chunk:
            break
        dst.write(chunk)
        digest.update(chunk)
        done += len(chunk)
        now = time.monotonic()
        if progress is not None and now - last >= 0.05:
            progress(done, total)
            last = now
    dst.flush()
    os.fsync(dst.fileno())
    if progress is not None:
        progress(done, total)
    return digest.hexdigest(), done


def _urlopen(request: urllib.request.Request, timeout: float):
    """urllib's urlopen (one place, so that tests can forbid the internet)."""
    return urllib.request.urlopen(request, timeout=timeout)  # noqa: S310 (http(s) only)


def _short(sha: str | None) -> str:
    return "unknown" if sha is None else sha


class _Interrupted(Exception):
    """A download that ended before its announced length."""


class _Fetching:
    """The fetching half of :class:`edgepose.registry.ModelStore` (see the
    module docstring); not used on its own."""

    registry: ModelRegistry
    models_dir: Path
    mirror_dir: Path | None
    mirror_url: str | None
    offline: bool
    timeout: float

    def _fetch(self, entry: ModelEntry, tried: list[str],
               progress: ProgressFn | None) -> ResolvedModel:
        self._require_pin(entry)
        # the mirror: a folder, or a base URL
        if self.mirror_dir is not None:
            if not self.mirror_dir.is_dir():
                tried.append(f"mirror: {self.mirror_dir} does not exist")
            else:
                found = self._find_in_dir(self.mirror_dir, self._source_names(entry))
                if found is None:
                    tried.append(f"mirror: no {' or '.join(self._source_names(entry))} in "
                                 f"{self.mirror_dir} or below")
                else:
                    return self._from_mirror_file(entry, found, progress)
        elif self.mirror_url is None:
            tried.append(f"mirror: {MIRROR_ENV} is not set")
        elif self.offline:
            tried.append(f"mirror: {self.mirror_url} (skipped: {OFFLINE_ENV} is set)")
        else:
            for file_name in self._source_names(entry):
                url = self.mirror_url + urllib.parse.quote(file_name)
                is_archive = entry.archive is not None and file_name == entry.archive.file
                result = self._try_download(entry, url, is_archive, "mirror", tried, progress)
                if result is not None:
                    return result
        # upstream
        if entry.url is None:
            tried.append("upstream: none (edgepose downloads this file from nowhere: a "
                         "conversion with no public release, or weights it does not distribute)")
        elif self.offline:
            tried.append(f"upstream: {entry.url} (skipped: {OFFLINE_ENV} is set)")
        else:
            result = self._try_download(entry, entry.url, entry.archive is not None, "upstream",
                                        tried, progress)
            if result is not None:
                return result
        raise ModelNotFoundError(self._not_found_message(entry, tried))

    def _not_found_message(self, entry: ModelEntry, tried: list[str]) -> str:
        size = f", {entry.size} bytes" if entry.size else ""
        expected = self.expected_sha256(entry)
        lines = [f"No copy of model {entry.name!r} ({entry.file}{size}, sha256 "
                 f"{_short(expected)}) was found. Looked in:"]
        lines += [f"  - {t}" for t in tried]
        target = self.models_dir / entry.file
        if entry.url is not None:
            what = (f"the archive {entry.archive.file} (it holds {entry.archive.member})"
                    if entry.archive else entry.file)
            lines.append(f"Fetch {entry.url} ({what}) on a machine with internet access, then "
                         f"either put {entry.file} at {target}, or into the folder "
                         f"{MODEL_DIR_ENV} names, or into a folder (or web server) named by "
                         f"{MIRROR_ENV}; or run `edgepose models import FILE`.")
        else:
            lines.append(f"{entry.file} has no public download: copy it from a machine that "
                         f"has it to {target}, or into the folder {MODEL_DIR_ENV} names, or "
                         f"point {MIRROR_ENV} at a folder (or web server) that holds it; or "
                         "run `edgepose models import FILE`.")
        return "\n".join(lines)

    # -- installing into the cache -------------------------------------------------

    def _temp_file(self, name: str) -> tuple[BinaryIO, Path]:
        self.models_dir.mkdir(parents=True, exist_ok=True)
        return create_temp(self.models_dir, name)

    def _install(self, entry: ModelEntry, tmp: Path, sha256: str, place: str,
                 source: str) -> Path:
        """Renames a verified temporary file into the cache."""
        expected = self.expected_sha256(entry)
        if sha256 != expected:
            raise self._mismatch(entry, source, expected, sha256, tmp.stat().st_size, place)
        final = self.models_dir / entry.file
        os.replace(tmp, final)
        self._remember(final.resolve(), sha256)
        return final

    def _unpack_or_install(self, entry: ModelEntry, tmp: Path, sha256: str, is_archive: bool,
                           place: str, source: str) -> Path:
        """Installs a fetched file, or (for an archive) checks the archive
        and installs its member."""
        if not is_archive:
            return self._install(entry, tmp, sha256, place, source)
        assert entry.archive is not None
        if entry.archive.sha256 is not None and sha256 != entry.archive.sha256:
            raise self._mismatch(entry, source, entry.archive.sha256, sha256, tmp.stat().st_size,
                                 place, archive=True)
        member_tmp: Path | None = None
        try:
            with zipfile.ZipFile(tmp) as zf:
                member = self._archive_member(entry, zf, source)
                out, member_tmp = self._temp_file(entry.file)
                with out, zf.open(member) as src:
                    member_sha, _ = _copy_hashing(src, out, None, None)
            return self._install(entry, member_tmp, member_sha, place, f"{source} ({member})")
        except zipfile.BadZipFile as exc:
            raise ValueError(f"{source} is not a valid zip archive ({exc}); expected "
                             f"{entry.archive.file}, which holds {entry.archive.member}.") from None
        finally:
            if member_tmp is not None:
                member_tmp.unlink(missing_ok=True)

    @staticmethod
    def _archive_member(entry: ModelEntry, zf: zipfile.ZipFile, where: str) -> str:
        assert entry.archive is not None
        names = [n for n in zf.namelist() if n.rsplit("/", 1)[-1] == entry.archive.member]
        if len(names) != 1:
            raise ValueError(
                f"The archive from {where} should hold exactly one {entry.archive.member} (model "
                f"{entry.name!r}); it holds {len(names)}: {names[:5] or zf.namelist()[:10]}.")
        return names[0]

    def _from_mirror_file(self, entry: ModelEntry, found: Path,
                          progress: ProgressFn | None) -> ResolvedModel:
        is_archive = entry.archive is not None and found.name == entry.archive.file
        where = f"mirror {found}"
        tmp: Path | None = None
        try:
            out, tmp = self._temp_file(entry.file)
            with out, open(found, "rb") as src:
                sha, _ = _copy_hashing(src, out, found.stat().st_size, progress)
            path = self._unpack_or_install(entry, tmp, sha, is_archive, "mirror", where)
        except (HashMismatchError, UnverifiedModelError):
            raise
        except OSError as exc:
            if is_archive:
                raise
            # A read-only cache: use the mirror's file in place, once verified.
            log.warning("cannot copy %s into the cache %s (%s); using it in place",
                        found, self.models_dir, exc)
            self._check(found, entry, self.expected_sha256(entry), "mirror")
            return ResolvedModel(entry, found, "mirror", str(found))
        finally:
            if tmp is not None:
                tmp.unlink(missing_ok=True)
        return ResolvedModel(entry, path, "mirror", str(found))

    def _try_download(self, entry: ModelEntry, url: str, is_archive: bool, place: str,
                      tried: list[str], progress: ProgressFn | None) -> ResolvedModel | None:
        """Downloads ``url`` into the cache; None (with the reason appended to
        ``tried``) when the server cannot be reached or the download breaks off."""
        tmp: Path | None = None
        request = urllib.request.Request(url, headers={"User-Agent": _user_agent()})
        try:
            log.info("downloading %s", url)
            with _urlopen(request, self.timeout) as response:
                length = response.headers.get("Content-Length")
                total = int(length) if length and length.isdigit() else None
                out, tmp = self._temp_file(entry.file)
                with out:
                    sha, done = _copy_hashing(response, out, total, progress)
                if total is not None and done < total:
                    raise _Interrupted(f"the download broke off after {done} of {total} bytes")
            path = self._unpack_or_install(entry, tmp, sha, is_archive, place, f"{place} {url}")
            return ResolvedModel(entry, path, place, url)
        except urllib.error.HTTPError as exc:
            tried.append(f"{place}: {url}: HTTP {exc.code} {exc.reason}")
        except urllib.error.URLError as exc:
            tried.append(f"{place}: {url}: cannot connect ({exc.reason})")
        except _Interrupted as exc:
            tried.append(f"{place}: {url}: {exc}")
        except http.client.HTTPException as exc:  # IncompleteRead, RemoteDisconnected, ...
            tried.append(f"{place}: {url}: the download broke off ({type(exc).__name__})")
        except OSError as exc:  # timeouts, resets, a cache that cannot be written
            tried.append(f"{place}: {url}: {type(exc).__name__}: {exc}")
        finally:
            if tmp is not None:
                tmp.unlink(missing_ok=True)
        return None

    # -- import and verify --------------------------------------------------------

    def import_file(self, path: str | os.PathLike, name: str | None = None) -> ResolvedModel:
        """Copies a model file (or its published zip) the user already has into
        the cache, verified.

        Without ``name`` the file is recognised by its sha256 (or its zip's).
        With ``name``, a file of an entry that has a pinned sha256 must match
        it; for an entry without one (RTMPose) the file's sha256 (for a zip:
        its member's) is recorded as the one the user vouches for, and from
        then on every copy of that model must match it.

        Raises:
            FileNotFoundError: no such file.
            ValueError: an unknown name, or (without ``name``) a file that is
                not a registry model.
            HashMismatchError: the file is not the pinned one.
        """
        src = Path(path).expanduser()
        if not src.is_file():
            raise FileNotFoundError(f"{str(src)!r} is not a file: pass the model file to import.")
        sha, size = sha256_file(src), src.stat().st_size
        source = f"import {src}"
        if name is None:
            hit = self.registry.by_sha256(sha) or self._imported_by_sha256(sha)
            if hit is None:
                raise ValueError(
                    f"{src} (sha256 {sha}) is not a file the registry knows. If it is the "
                    "release of an entry without a pinned sha256 (such as rtmpose-m), name it: "
                    "`edgepose models import FILE --name NAME` (edgepose models list shows the "
                    "names).")
            entry, is_archive = hit
            vouch = False
        else:
            entry = self.registry.get(name)
            is_archive = (entry.archive is not None and src.suffix.lower() != f".{entry.format}"
                          and zipfile.is_zipfile(src))
            pinned = entry.sha256
            if is_archive and entry.archive is not None:
                pinned = entry.archive.sha256
            if pinned is not None and sha != pinned:
                raise self._mismatch(entry, str(src), pinned, sha, size, "import",
                                     archive=is_archive)
            vouch = entry.sha256 is None
        tmp: Path | None = None
        try:
            out, tmp = self._temp_file(entry.file)
            with out, open(src, "rb") as f:
                copied_sha, _ = _copy_hashing(f, out, None, None)
            if copied_sha != sha:
                raise OSError(f"{src} changed while it was being copied; import it again.")
            if vouch:
                member_sha, member_size = (self._member_hash(entry, tmp, str(src)) if is_archive
                                           else (sha, size))
            # The pin and the file it pins land together: under the cache's lock.
            with self._lock():
                if vouch:
                    self._pin(entry, member_sha, member_size, src,
                              archive_sha=sha if is_archive else None)
                path = self._unpack_or_install(entry, tmp, sha, is_archive, "import", source)
        finally:
            if tmp is not None:
                tmp.unlink(missing_ok=True)
        return ResolvedModel(entry, path, "import", str(src))

    def _member_hash(self, entry: ModelEntry, archive: Path, where: str) -> tuple[str, int]:
        try:
            with zipfile.ZipFile(archive) as zf:
                member = self._archive_member(entry, zf, where)
                with zf.open(member) as f:
                    return sha256_stream(f), zf.getinfo(member).file_size
        except zipfile.BadZipFile as exc:
            raise ValueError(f"{where} is not a valid zip archive ({exc}).") from None


def _user_agent() -> str:
    from edgepose import __version__
    return f"edgepose/{__version__} (+python urllib)"
