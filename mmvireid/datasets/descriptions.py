# Copyright (c) mmvireid contributors. All rights reserved.
"""Per-image text descriptions (EEES): load, validate and attach them.

The descriptions live in one JSON object written offline by
``tools/generate_descriptions.py``::

    {"cam1/0001/0001.jpg": "A man with short hair, wearing ...", ...}

Keys are image paths **relative to the dataset root**, with '/' separators.
Values are non-empty strings. Every training image must have one: a missing
text would silently drop the image from the text losses, so loading fails
instead, naming the first image without text.
"""
import json
import os.path as osp
import posixpath
from typing import Dict, List

GENERATE_HINT = ('Create or complete it with `python '
                 'tools/generate_descriptions.py` (see its --help; the '
                 '`attributes` backend builds the texts of the toy dataset '
                 'from its attributes.json); it skips the images already '
                 'described.')


def normalize_key(path: str) -> str:
    """The canonical form of a description key: posix, no './' or '//'."""
    return posixpath.normpath(path.replace('\\', '/'))


def resolve_descriptions_path(json_path: str, data_root: str) -> str:
    """``json_path`` if absolute, else ``data_root/json_path``."""
    if osp.isabs(json_path):
        return json_path
    return osp.join(data_root, json_path)


def read_descriptions(json_path: str) -> Dict[str, str]:
    """Read and type-check a descriptions file.

    Args:
        json_path (str): Path of the JSON file.

    Returns:
        dict[str, str]: ``{normalised relative path: text}``.
    """
    if not osp.isfile(json_path):
        raise FileNotFoundError(
            f'The descriptions file "{json_path}" does not exist. '
            f'{GENERATE_HINT}')
    with open(json_path, 'r', encoding='utf-8') as f:
        try:
            table = json.load(f)
        except json.JSONDecodeError as e:
            raise ValueError(f'The descriptions file "{json_path}" is not '
                             f'valid JSON: {e}') from None
    if not isinstance(table, dict):
        raise ValueError(
            f'The descriptions file "{json_path}" must hold one JSON object '
            '{"relative/image/path": "text", ...}, but holds a '
            f'{type(table).__name__}.')
    out = {}
    for key, text in table.items():
        if not isinstance(text, str):
            raise ValueError(
                f'The description of "{key}" in "{json_path}" must be a '
                f'string, but is a {type(text).__name__}.')
        out[normalize_key(key)] = text
    return out


def load_descriptions(json_path: str, data_list: List[dict],
                      data_root: str) -> List[dict]:
    """Attach ``text`` to every item of ``data_list``, in place.

    Each item is looked up by its ``img_path`` relative to ``data_root``.
    Every item must have a non-empty (not only white-space) text.

    Args:
        json_path (str): The descriptions file, absolute or relative to
            ``data_root``.
        data_list (list[dict]): Items with an ``img_path`` key.
        data_root (str): The dataset root the keys are relative to.

    Returns:
        list[dict]: ``data_list``, whose items now carry ``text``.

    Raises:
        FileNotFoundError: If the file does not exist.
        ValueError: If the file is malformed, or an image has no text; the
            message names the first such image, the file, and how many
            images lack a text.
    """
    json_path = resolve_descriptions_path(json_path, data_root)
    table = read_descriptions(json_path)
    missing = []
    for item in data_list:
        key = normalize_key(osp.relpath(item['img_path'], data_root))
        text = table.get(key)
        if text is None or not text.strip():
            missing.append(key)
            continue
        item['text'] = text.strip()
    if missing:
        raise ValueError(
            f'{len(missing)} of {len(data_list)} training images have no '
            f'(or an empty) description in "{json_path}"; the first is '
            f'"{missing[0]}" (keys are paths relative to "{data_root}"). '
            f'{GENERATE_HINT}')
    return data_list
