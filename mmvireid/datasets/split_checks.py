# Copyright (c) mmvireid contributors. All rights reserved.
"""Split sanity shared by the datasets and the dataset checkers.

The datasets list the images of a protocol from id lists, index files and
folders. Three things there give wrong scores without any error, so they
are checked wherever a split is built:

* **Train / test overlap** (:func:`overlap_message`): a person listed for
  training and for testing is scored on images of someone the model was
  trained on. Always an error.
* **Hidden files** (:func:`is_hidden`): ``.DS_Store``, macOS ``._*``
  resource forks and other dot files of a copied folder are not images;
  the folder listings skip them.
* **Ids without images and empty gallery folders**: the datasets report
  them (errors for test ids and gallery folders, which change the
  protocol; warnings for training ids). See
  ``docs/en/user_guides/datasets.md`` for the rules.

:func:`decode_images` decodes every image (the checkers' ``--decode``).
"""
import contextlib
import logging
import os
import os.path as osp
import sys
from typing import (Callable, Iterable, Iterator, List, Optional, Sequence,
                    Tuple)

from mmengine.logging import MMLogger
from PIL import Image
from tqdm import tqdm

from mmvireid.structures import IR, VIS

__all__ = [
    'SplitError', 'is_hidden', 'list_visible', 'format_ids', 'format_paths',
    'pid_of_path', 'read_other_split', 'overlap_message', 'TEST_ID_HINT',
    'test_id_errors', 'empty_folder_message', 'decode_image', 'decode_images',
    'report_undecodable', 'quiet_current_logger'
]


class SplitError(ValueError):
    """A split that would give wrong scores (overlapping identities, test
    ids without images, empty gallery folders). A ``ValueError``, so the
    tools' start-up check prints it as one ``ERROR:`` line."""


def is_hidden(name: str) -> bool:
    """Whether a folder entry is a hidden file (``.DS_Store``, ``._x.jpg``).

    Hidden entries are never images of a protocol: macOS writes them when a
    dataset is browsed or copied, and they would otherwise be drawn as
    gallery images, counted by the checkers and fail to decode.
    """
    return osp.basename(name).startswith('.')


def format_ids(ids: Sequence, noun: str = 'id', limit: int = 10) -> str:
    """``'3 ids (0003, 0007, 0012)'``, or the first ``limit`` and the count.

    Args:
        ids (Sequence): The ids, in the order to show (str or int).
        noun (str): What an id is, for the message. Defaults to ``'id'``.
        limit (int): How many are shown at most. Defaults to 10.
    """
    ids = [str(i) for i in ids]
    label = f'{len(ids)} {noun}' + ('' if len(ids) == 1 else 's')
    if len(ids) <= limit:
        return f'{label} ({", ".join(ids)})'
    return f'{label} (the first {limit}: {", ".join(ids[:limit])})'


def format_paths(paths: Sequence[str], limit: int = 5) -> str:
    """Quoted paths, the first ``limit`` and how many more."""
    shown = ', '.join(f'"{p}"' for p in paths[:limit])
    if len(paths) > limit:
        shown += f' and {len(paths) - limit} more'
    return shown


def pid_of_path(rel_path: str) -> Optional[int]:
    """The person id of an index line's path: its parent folder's name.

    RegDB (``Visible/<pid>/<file>``) and LLCM (``train_vis/camC/PPPP/
    <file>``) keep one folder per person. None when the path has no parent
    folder or the folder name is not a number.
    """
    parts = rel_path.replace('\\', '/').split('/')
    if len(parts) < 2 or not parts[-2].isdigit():
        return None
    return int(parts[-2])


def read_other_split(reader: Callable, path: str):
    """``reader(path)``, or None when the file is missing or damaged.

    The overlap check reads the *other* split's lists too. Their absence or
    damage is reported when that split is built, so it does not stop this
    one (and the overlap is then checked there, with both sides).
    """
    if not osp.isfile(path):
        return None
    try:
        return reader(path)
    except (OSError, ValueError):
        return None


def overlap_message(dataset: str,
                    train: Sequence[Tuple[str, Iterable]],
                    test: Tuple[str, Iterable],
                    fmt: Callable = str) -> Optional[str]:
    """The error message of overlapping training and test identities.

    Args:
        dataset (str): The dataset's name, for the message.
        train (Sequence[tuple[str, Iterable]]): ``(source, ids)`` per
            training list, ``source`` saying where the ids come from (e.g.
            the quoted path of ``exp/train_id.txt``).
        test (tuple[str, Iterable]): ``(source, ids)`` of the test list.
        fmt (Callable): Formats one id for the message. Defaults to ``str``.

    Returns:
        str | None: None when no id is shared; else a message naming the
        shared ids (the first 10 and their number) and the lists they come
        from.
    """
    test_source, test_ids = test
    test_ids = set(test_ids)
    parts = []
    for source, ids in train:
        shared = sorted(set(ids) & test_ids)
        if shared:
            parts.append(f'{format_ids([fmt(i) for i in shared])} of '
                         f'{source} {"is" if len(shared) == 1 else "are"} '
                         f'also in {test_source}')
    if not parts:
        return None
    return (f'{dataset}: the training and test identities overlap: ' +
            '; '.join(parts) + '. The test would score people the model '
            'was trained on; remove these ids from the training or the test '
            'list (the official splits share no identity).')


#: The end of the messages on listed test ids without images.
TEST_ID_HINT = ('Every test id needs images in both modalities: a listed id '
                'without them changes the protocol without notice (fewer '
                'queries, or queries without a true match). Restore the '
                'missing folders or remove the id from the list.')


def test_id_errors(dataset: str, id_file: str, ids: Iterable[str], have: dict,
                   where: dict) -> List[str]:
    """Messages on listed test ids without images of a modality.

    Args:
        dataset (str): The dataset's name, for the message.
        id_file (str): The test id list, for the message.
        ids (Iterable[str]): The listed test ids.
        have (dict): ``{'vis': ids, 'ir': ids}``, the ids with at least one
            image of that modality.
        where (dict): ``{'vis': (name, folders), 'ir': (name, folders)}``,
            e.g. ``('infrared', 'cam3, cam6')``.

    Returns:
        list[str]: One message for the ids without any image, one per
        modality for the ids without images of that modality only.
    """
    ids = sorted(set(ids))
    (vis, vis_at), (ir, ir_at) = where[VIS], where[IR]
    has_vis, has_ir = have[VIS], have[IR]
    groups = [
        ([i for i in ids if i not in has_vis and i not in has_ir],
         f'no image of either modality ({vis}: {vis_at}; {ir}: {ir_at})'),
        ([i for i in ids if i in has_vis and i not in has_ir],
         f'no {ir} image ({ir_at})'),
        ([i for i in ids if i not in has_vis and i in has_ir],
         f'no {vis} image ({vis_at})'),
    ]
    errors = []
    for missing, what in groups:
        if missing:
            verb = 'has' if len(missing) == 1 else 'have'
            errors.append(f'{dataset}: {format_ids(missing, "test id")} '
                          f'listed in "{id_file}" {verb} {what}. '
                          f'{TEST_ID_HINT}')
    return errors


def empty_folder_message(dataset: str,
                         folders: Sequence[str],
                         what: str = 'gallery folder') -> Optional[str]:
    """The error message of empty (id, camera) folders of test ids, or None
    when there is none."""
    if not folders:
        return None
    verb = 'holds' if len(folders) == 1 else 'hold'
    noun = what if len(folders) == 1 else what + 's'
    return (f'{dataset}: {len(folders)} {noun} of test ids {verb} no image '
            f'(hidden files do not count): {format_paths(folders)}. A '
            'single-shot gallery draws one image from every existing (id, '
            'camera) folder, and an empty folder has none (the reference '
            'fails on it); put its images back or delete the empty folder.')


def decode_image(path: str) -> Optional[str]:
    """Why ``path`` cannot be decoded, or None when it decodes.

    Pillow checks the file's structure (``verify``) and then decodes all of
    its pixels (``load``, which ``verify`` does not do): a truncated JPEG
    passes the first step and fails the second.
    """
    try:
        if osp.getsize(path) == 0:
            return 'the file is empty'
        with Image.open(path) as img:
            img.verify()
        # verify() leaves the image unusable: open it again to decode.
        with Image.open(path) as img:
            img.load()
    except FileNotFoundError:
        return 'the file does not exist'
    except Exception as e:  # Pillow raises many types for broken files
        return f'{type(e).__name__}: {e}'
    return None


def _progress(total: int, enabled: bool):
    """A tqdm progress bar on stderr, or None when not ``enabled``."""
    if not enabled:
        return None
    return tqdm(total=total, unit='img', desc='decoding', file=sys.stderr)


def decode_images(paths: Sequence[str],
                  progress: bool = True) -> List[Tuple[str, str]]:
    """Decode every image; ``(path, reason)`` of those that fail.

    Args:
        paths (Sequence[str]): The images, decoded in this order.
        progress (bool): Show a progress bar on stderr. Defaults to True.
    """
    bad = []
    bar = _progress(len(paths), progress)
    for path in paths:
        reason = decode_image(path)
        if reason is not None:
            bad.append((path, reason))
        if bar is not None:
            bar.update(1)
    if bar is not None:
        bar.close()
    return bad


def report_undecodable(paths: Sequence[str], progress: bool = True) -> int:
    """The dataset checkers' ``--decode``: decode every image, print the
    undecodable ones by path (stdout) and an ``ERROR:`` line (stderr).

    Returns:
        int: The number of undecodable images (0: all decode).
    """
    bad = decode_images(paths, progress)
    for path, reason in bad:
        print(f'  undecodable image: {path} ({reason})')
    if bad:
        print(
            f'ERROR: {len(bad)} of {len(paths)} image(s) cannot be decoded '
            '(listed above); replace them with good copies (re-extract the '
            'dataset)',
            file=sys.stderr)
    else:
        print(f'decoded all {len(paths)} images')
    return len(bad)


@contextlib.contextmanager
def quiet_current_logger(level: int = logging.ERROR) -> Iterator[None]:
    """Raise the current MMEngine logger's level for a while.

    The checkers collect the datasets' warnings (``split_warnings``) and
    print them once; without this, every dataset built would also log them.
    """
    logger = MMLogger.get_current_instance()
    old = logger.level
    logger.setLevel(level)
    try:
        yield
    finally:
        logger.setLevel(old)


def list_visible(folder: str) -> List[str]:
    """The entries of ``folder`` that are not hidden, sorted by name."""
    return sorted(n for n in os.listdir(folder) if not is_hidden(n))
