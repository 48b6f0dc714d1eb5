# Copyright (c) mmvireid contributors. All rights reserved.
"""Per-image text descriptions (EEES): load, validate and attach them;
keep infrared texts colour-free; audit a descriptions file.

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
import re
from typing import Dict, List, Mapping, Optional, Tuple

from mmvireid.structures import IR, MODALITIES

GENERATE_HINT = ('Create or complete it with `python '
                 'tools/generate_descriptions.py CONFIG --backend vlm '
                 '--model llava-hf/llava-1.5-7b-hf` (real data) or '
                 '`--backend attributes` (toy data, from its '
                 'attributes.json); it skips the images already described.')
DEFAULT_VLM = 'llava-hf/llava-1.5-7b-hf'


def generate_command(config: Optional[str] = None,
                     backend: str = 'vlm',
                     model: str = DEFAULT_VLM,
                     data_root: Optional[str] = None) -> str:
    """The command that writes the descriptions of ``config``.

    Args:
        config (str, optional): The config path as the user gave it;
            ``CONFIG`` when unknown.
        backend (str): ``'vlm'`` (real data) or ``'attributes'`` (toy data
            with an ``attributes.json``). Defaults to 'vlm'.
        model (str): The VLM of the ``vlm`` backend.
        data_root (str, optional): Added as ``--data-root`` (when the
            training overrides the config's data_root).

    Returns:
        str: One shell command.
    """
    cmd = f'python tools/generate_descriptions.py {config or "CONFIG"} ' \
        f'--backend {backend}'
    if backend == 'vlm':
        cmd += f' --model {model}'
    if data_root:
        cmd += f' --data-root {data_root}'
    return cmd


def generate_hint(config: str, data_root: str,
                  data_root_arg: Optional[str] = None) -> str:
    """How to create the descriptions of ``config``, with its command.

    The ``attributes`` backend is proposed where ``data_root`` has an
    ``attributes.json`` (the toy data), the ``vlm`` backend otherwise.

    Args:
        config (str): The config path.
        data_root (str): The train set's root.
        data_root_arg (str, optional): A ``--data-root`` to add.
    """
    toy = osp.isfile(osp.join(data_root, 'attributes.json'))
    cmd = generate_command(config, 'attributes' if toy else 'vlm',
                           data_root=data_root_arg)
    hint = f'Create or complete it with `{cmd}`'
    if toy:
        hint += (' (or `--backend vlm` for captions by a vision-language '
                 'model)')
    else:
        hint += ' (on a GPU; README.md, "Train EEES on SYSU-MM01")'
    return hint + '; it skips the images already described.'


class DescriptionsError(Exception):
    """A train set lacks (some) descriptions.

    ``str(error)`` ends with the generic :data:`GENERATE_HINT`;
    :meth:`message_for` gives the exact command for a config.

    Args:
        problem (str): What is wrong, naming the file.
        data_root (str): The train set's root.
    """

    def __init__(self, problem: str, data_root: str):
        self.problem = problem
        self.data_root = data_root
        super().__init__(f'{problem} {GENERATE_HINT}')

    def __reduce__(self):  # picklable (dataloader workers, DDP)
        return type(self), (self.problem, self.data_root)

    def message_for(self, config: str,
                    data_root_arg: Optional[str] = None) -> str:
        """The message with the command for ``config``."""
        return f'{self.problem} ' + generate_hint(config, self.data_root,
                                                  data_root_arg)


class MissingDescriptionsError(DescriptionsError, FileNotFoundError):
    """The descriptions file does not exist."""


class IncompleteDescriptionsError(DescriptionsError, ValueError):
    """Train images without a (non-empty) text."""


# --------------------------------------------------------------------------
# Colour words: infrared texts must not name a colour (an IR camera sees
# none). One home for the list; tools/dataset_converters/toy_captions.py
# and tools/generate_descriptions.py import it.
# --------------------------------------------------------------------------
#: Colour names, matched as whole words in any case (hair colours and
#: metal colours included: an infrared image shows neither).
COLOUR_NAMES = (
    'black', 'white', 'gray', 'grey', 'red', 'green', 'blue', 'yellow',
    'orange', 'purple', 'pink', 'brown', 'cyan', 'beige', 'tan', 'khaki',
    'navy', 'maroon', 'burgundy', 'crimson', 'scarlet', 'violet', 'lavender',
    'lilac', 'magenta', 'fuchsia', 'turquoise', 'teal', 'aqua', 'indigo',
    'olive', 'mustard', 'ivory', 'cream', 'charcoal', 'gold', 'golden',
    'silver', 'bronze', 'coral', 'peach', 'mint', 'lime', 'blond', 'blonde',
    'brunette', 'auburn', 'ginger',
    # -ish forms
    'blackish', 'whitish', 'grayish', 'greyish', 'reddish', 'greenish',
    'bluish', 'blueish', 'yellowish', 'orangish', 'orangey', 'purplish',
    'pinkish', 'brownish')
#: Words about colour itself; removed like a colour name.
COLOUR_TERMS = ('colour', 'colours', 'color', 'colors', 'coloured',
                'colored', 'colourful', 'colorful', 'multicoloured',
                'multicolored', 'multi-coloured', 'multi-colored')
#: Words that qualify a colour ("light blue", "dark-green"). They are
#: removed with the colour they qualify and kept alone: "a dark top" says
#: how bright a garment looks, which an infrared image does show.
COLOUR_MODIFIERS = ('light', 'dark', 'bright', 'pale', 'deep', 'pastel',
                    'neon', 'dull', 'vivid', 'muted', 'hot', 'baby', 'sky',
                    'royal', 'dusty', 'faded', 'soft', 'rich', 'off')
#: Everything the audit counts as a colour word.
COLOUR_WORDS = COLOUR_NAMES + COLOUR_TERMS

_COLOUR = '(?:' + '|'.join(
    re.escape(w) for w in sorted(COLOUR_WORDS, key=len, reverse=True)) + ')'
_MOD = '(?:(?:' + '|'.join(COLOUR_MODIFIERS) + r')[\s-]+)*'
# one colour, or several joined ("black and white", "blue/white", "red,
# white and blue"), with its modifiers and a "-coloured" / "-haired" tail
_ONE = rf'{_MOD}{_COLOUR}'
_JOIN = (r'(?:-(?:and|or|n)-|\s*(?:,|/|&|\+|-)\s*(?:and\s+|or\s+)?'
         r'|\s+(?:and|or)\s+)')
_PHRASE = rf'{_ONE}(?:{_JOIN}{_ONE})*(?:[\s-]+colou?red|-haired)?'
# the end of a noun use: punctuation, or a conjunction not followed by
# another colour ("in black and white shoes" is attributive)
_END = rf'(?=\s*(?:[.,;:!?)]|$)|\s+(?:and|with|but)\b(?!\s+{_ONE}))'
# noun uses: "dressed (all) in black", "his hair is black"
_IN_COLOUR = re.compile(rf'\s*\b(?:in|of)\s+(?:all\s+)?(?:an?\s+)?'
                        rf'{_PHRASE}\b{_END}', re.IGNORECASE)
_IS_COLOUR = re.compile(rf'\s*\b(?:is|are|was|were|looks|appears)\s+'
                        rf'(?:mostly\s+|mainly\s+|all\s+)?{_PHRASE}\b{_END}',
                        re.IGNORECASE)
# "light-coloured" says how bright a garment is: keep the modifier
_MOD_COLOURED = re.compile(
    r'\b(' + '|'.join(COLOUR_MODIFIERS) + r')[\s-]+colou?red\b',
    re.IGNORECASE)
# an attributive colour, with the article before it (fixed afterwards)
_ATTR_COLOUR = re.compile(rf'(?:\b(?P<art>an?)\s+)?\b{_PHRASE}\b',
                          re.IGNORECASE)
_WORD = re.compile(r"[A-Za-z]+(?:-[A-Za-z]+)*")
_ART_MARK = '\x00'


def find_colour_words(text: str) -> List[str]:
    """The colour words of ``text`` (whole words, lower case, in order).

    Counts :data:`COLOUR_NAMES` and :data:`COLOUR_TERMS`; a modifier alone
    ("a dark top") is not a colour word.
    """
    words = set(COLOUR_WORDS)
    found = []
    for token in _WORD.findall(text):
        token = token.lower()
        if token in words:
            found.append(token)
            continue
        found.extend(p for p in token.split('-') if p in words)
    return found


def has_colour_word(text: str) -> bool:
    """Whether ``text`` names a colour (see :func:`find_colour_words`)."""
    return bool(find_colour_words(text))


def _fix_article(match: re.Match) -> str:
    article, nxt = match.group(1), match.group(2)
    if nxt[:1] in '.,;:!?)':  # the article lost its noun: drop it
        return nxt
    vowel = nxt[:1].lower() in 'aeiou'
    new = 'an' if vowel else 'a'
    if article[:1].isupper():
        new = new.capitalize()
    return f'{new} {nxt}'


def strip_colour_words(text: str) -> str:
    """Remove every colour from ``text``, deterministically.

    Rules, in order: a colour used as a noun goes with its preposition or
    verb ("dressed in black." -> "dressed.", "his hair is grey." -> "his
    hair."); "light-/dark-coloured" keeps the brightness ("a light
    jacket"); every other colour phrase goes with its modifiers and joins
    ("a light blue and white striped shirt" -> "a striped shirt"), and the
    article before it is fixed ("an orange top" -> "a top"). Then spaces
    and punctuation are tidied. A text without colour words comes back
    unchanged (same object value).

    Args:
        text (str): One description.

    Returns:
        str: The text without colour words; possibly empty.
    """
    if not has_colour_word(text):
        return text
    out = _IN_COLOUR.sub('', text)
    out = _IS_COLOUR.sub('', out)
    out = _MOD_COLOURED.sub(r'\1', out)
    out = _ATTR_COLOUR.sub(
        lambda m: (m.group('art') + _ART_MARK) if m.group('art') else '', out)
    out = re.sub(rf'\b(an?|An?){_ART_MARK}\s*(\S+|$)', _fix_article, out)
    out = out.replace(_ART_MARK, '')
    # tidy: spaces, empty brackets, doubled or dangling punctuation and
    # conjunctions
    out = re.sub(r'\(\s*\)', '', out)
    out = re.sub(r'\s+', ' ', out)
    out = re.sub(r'\s+([.,;:!?)])', r'\1', out)
    out = re.sub(r'\s*\b(and|or|with|in|of)\s*([.;:!?])', r'\2', out)
    out = re.sub(r'\b(and|or)\s*,', ',', out)
    out = re.sub(r',\s*(and|or)\s+(and|or)\b', r', \1', out)
    out = re.sub(r'([,;:])\s*(?=[,;:.!?])', '', out)
    out = re.sub(r'\b(and|or) (and|or)\b', r'\1', out)
    out = re.sub(r'^[\s,;:.]+', '', out).strip()
    if out and text[:1].isupper():
        out = out[0].upper() + out[1:]
    # anything the rules above could not place (a colour inside a word
    # pattern they do not cover) goes as a bare word
    if has_colour_word(out):
        words = [
            w for w in out.split(' ')
            if not find_colour_words(w.strip('.,;:!?()'))
        ]
        out = ' '.join(words)
    return out


def purify_infrared(texts: Mapping[str, str],
                    modalities: Mapping[str, str]) -> Tuple[Dict[str, str],
                                                            List[str]]:
    """Apply :func:`strip_colour_words` to every infrared text.

    Args:
        texts (Mapping[str, str]): ``{key: text}``.
        modalities (Mapping[str, str]): ``{key: 'vis' | 'ir'}``; keys
            missing here are left alone.

    Returns:
        tuple: ``(texts, changed)``: a new dict, and the keys whose text
        the filter changed.
    """
    out, changed = dict(texts), []
    for key, text in texts.items():
        if modalities.get(key) == IR:
            clean = strip_colour_words(text)
            if clean != text:
                out[key] = clean
                changed.append(key)
    return out, changed


#: CLIP's text encoder reads 77 tokens, about 55-60 words; longer texts
#: are truncated.
LONG_TEXT_WORDS = 55


def audit_descriptions(texts: Mapping[str, str],
                       modalities: Mapping[str, str]) -> Dict[str, dict]:
    """Per-modality statistics of a descriptions table.

    Args:
        texts (Mapping[str, str]): ``{key: text}`` as read from the file.
        modalities (Mapping[str, str]): ``{key: 'vis' | 'ir'}`` of every
            train image.

    Returns:
        dict: ``{'vis': stats, 'ir': stats}`` and ``'extra'`` (keys that are
        no train image). ``stats``: ``images`` (train images), ``texts``
        (with a non-empty text), ``missing`` (no key), ``empty``
        (white-space only), ``colour_texts`` (texts naming a colour),
        ``colour_words`` ({word: count}), ``distinct`` (distinct texts),
        ``shared`` (images whose text another image has too), ``words``
        (min / mean / median / max words per text), ``long`` (texts over
        :data:`LONG_TEXT_WORDS` words), ``examples`` (a few keys with a
        colour word, missing or empty).
    """
    report = {}
    for mod in MODALITIES:
        keys = [k for k, m in modalities.items() if m == mod]
        present = [k for k in keys if k in texts]
        empty = [k for k in present if not texts[k].strip()]
        good = [k for k in present if texts[k].strip()]
        colour = {}
        colour_keys = []
        for k in good:
            found = find_colour_words(texts[k])
            if found:
                colour_keys.append(k)
            for w in found:
                colour[w] = colour.get(w, 0) + 1
        counts = {}
        for k in good:
            counts[texts[k].strip()] = counts.get(texts[k].strip(), 0) + 1
        lengths = sorted(len(texts[k].split()) for k in good)
        words = dict(min=0, mean=0.0, median=0.0, max=0)
        if lengths:
            mid = len(lengths) // 2
            words = dict(
                min=lengths[0],
                mean=sum(lengths) / len(lengths),
                median=float(lengths[mid]) if len(lengths) % 2 else
                (lengths[mid - 1] + lengths[mid]) / 2,
                max=lengths[-1])
        report[mod] = dict(
            images=len(keys),
            texts=len(good),
            missing=len(keys) - len(present),
            empty=len(empty),
            colour_texts=len(colour_keys),
            colour_words=dict(sorted(colour.items(), key=lambda x: -x[1])),
            distinct=len(counts),
            shared=sum(c for c in counts.values() if c > 1),
            words=words,
            long=sum(n > LONG_TEXT_WORDS for n in lengths),
            examples=dict(
                colour=colour_keys[:3],
                missing=[k for k in keys if k not in texts][:3],
                empty=empty[:3]))
    report['extra'] = sum(1 for k in texts if k not in modalities)
    return report


def normalize_key(path: str) -> str:
    """The canonical form of a description key: posix, no './' or '//'."""
    return posixpath.normpath(path.replace('\\', '/'))


def resolve_descriptions_path(json_path: str, data_root: str) -> str:
    """``json_path`` if absolute, else ``data_root/json_path``."""
    if osp.isabs(json_path):
        return json_path
    return osp.join(data_root, json_path)


def read_descriptions(json_path: str,
                      data_root: Optional[str] = None) -> Dict[str, str]:
    """Read and type-check a descriptions file.

    Args:
        json_path (str): Path of the JSON file.
        data_root (str, optional): The dataset root (for the error's
            command). Defaults to the file's folder.

    Returns:
        dict[str, str]: ``{normalised relative path: text}``.

    Raises:
        MissingDescriptionsError: If the file does not exist.
        ValueError: If it is not one JSON object of strings.
    """
    if not osp.isfile(json_path):
        raise MissingDescriptionsError(
            f'The descriptions file "{json_path}" does not exist.',
            data_root or osp.dirname(json_path))
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
        MissingDescriptionsError: If the file does not exist (a
            FileNotFoundError).
        IncompleteDescriptionsError: If an image has no text (a
            ValueError); the message names the first such image, the file,
            and how many images lack a text.
        ValueError: If the file is malformed.
    """
    json_path = resolve_descriptions_path(json_path, data_root)
    table = read_descriptions(json_path, data_root)
    missing = []
    for item in data_list:
        key = normalize_key(osp.relpath(item['img_path'], data_root))
        text = table.get(key)
        if text is None or not text.strip():
            missing.append(key)
            continue
        item['text'] = text.strip()
    if missing:
        raise IncompleteDescriptionsError(
            f'{len(missing)} of {len(data_list)} training images have no '
            f'(or an empty) description in "{json_path}"; the first is '
            f'"{missing[0]}" (keys are paths relative to "{data_root}").',
            data_root)
    return data_list
