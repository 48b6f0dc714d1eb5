# Copyright (c) mmvireid contributors. All rights reserved.
"""Write the per-image text descriptions EEES trains with.

The output is one JSON object ``{relative image path: text}`` covering every
image of the config's **train** split (keys relative to its ``data_root``,
'/' separators), at the path the config's ``descriptions=`` names (default
``<data_root>/descriptions.json``). The backend is always named::

    # real data: any image-text-to-text model of transformers (GPU)
    python tools/generate_descriptions.py configs/eees_sysu.py \\
        --backend vlm --model llava-hf/llava-1.5-7b-hf --limit 64  # look
    python tools/generate_descriptions.py configs/eees_sysu.py \\
        --backend vlm --model llava-hf/llava-1.5-7b-hf --batch-size 16
    # several GPUs / jobs: one shard each, then merge
    python tools/generate_descriptions.py configs/eees_sysu.py \\
        --backend vlm --shard 0/4        # ... 1/4, 2/4, 3/4
    python tools/generate_descriptions.py configs/eees_sysu.py --merge
    # audit a file: per modality count, empty, colour words in IR, ...
    python tools/generate_descriptions.py configs/eees_sysu.py --check
    # toy data: sentences from the attribute table the generator ships
    python tools/generate_descriptions.py configs/eees_toy.py \\
        --backend attributes

Backends:

* ``vlm`` (alias ``llava``): a vision-language model loaded by name through
  transformers' auto classes (``AutoProcessor`` +
  ``AutoModelForImageTextToText``): LLaVA-1.5, LLaVA-NeXT, Qwen-VL-class
  models and others. The prompt goes through the processor's chat template;
  generation is batched and greedy, on the GPU when there is one.
  **The whole person reaches the model**: each image is padded to a square
  with the processor's mean colour first (LLaVA-1.5's "pad" mode), so a
  processor that centre-crops a square keeps head and feet
  (``--image-fit crop`` leaves the image to the processor). Visible images
  get :data:`VIS_PROMPT` (clothes *with colours*), infrared ones
  :data:`IR_PROMPT`, which forbids colours. ``--rewrite-model`` adds a
  second pass: an instruction LLM turns each caption into an attribute
  record rendered with the fixed template.
* ``attributes``: builds each sentence from ``attributes.json``
  (``{person id: {gender, hair, upper_color, upper_pattern, lower_color,
  shoes, bag, [upper_type, lower_type]}}``) with :func:`template_sentence`.
  The person id is the image's folder name unless ``--pid-regex`` says
  otherwise.

**Infrared texts are colour-free, guaranteed**: whatever the backend wrote
(captions, rewrite fields, fallbacks), every infrared text goes through the
deterministic filter :func:`mmvireid.datasets.descriptions.
strip_colour_words` before it is stored; the tool reports how many texts it
changed. A text that is empty after cleaning is not stored (a later run
tries again) and is counted.

**Robust at scale.** Images that already have a text are skipped (resume:
rerun the same command). The file is rewritten atomically every
``--save-every`` batches, on any error, and on SIGTERM / SIGINT (Ctrl-C), so
a killed job loses at most the batch in flight. ``--shard I/N`` describes
every N-th image from the I-th (0-based) into its own file
``<name>.shard-I-of-N.json``; ``--merge`` joins the shards into the output.
``--limit N`` describes N images drawn evenly from both modalities (a dry
run to read). The progress bar shows images/s and the ETA (a plain line per
save when stderr is not a terminal, e.g. in a batch job's log).

``transformers`` is needed only by the ``vlm`` backend.
"""
import argparse
import glob
import json
import os.path as osp
import re
import signal
import sys
import time
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Callable, Dict, List, Optional, Sequence, Tuple

from tqdm import tqdm

from mmvireid.structures import IR, MODALITIES, VIS

VIS_PROMPT = (
    'Describe the person in this surveillance image in one sentence. '
    'Mention the gender, the hair, the upper-body clothing with its colour '
    'and pattern, the lower-body clothing with its colour, the shoes with '
    'their colour, and any bag. Describe only what you can see.')
IR_PROMPT = (
    'This is an infrared surveillance image, which shows no colours. '
    'Describe the person in one sentence. Mention the gender, the hair, the '
    'upper-body clothing and its pattern, the lower-body clothing, the shoes '
    'and any bag. Do not mention any colour.')
#: LLaVA-1.5's conversation format, for ``--prompt-format`` with a model
#: whose processor has no chat template.
LLAVA_FORMAT = 'USER: <image>\n{prompt} ASSISTANT:'
#: LLaVA-1.5's conversation as a chat template (what the hub's llava-1.5
#: processors carry), for processors built without one.
LLAVA_CHAT_TEMPLATE = (
    "{% for message in messages %}{% if message['role'] == 'user' %}USER: "
    "{% else %}ASSISTANT: {% endif %}{% for item in message['content'] %}"
    "{% if item['type'] == 'image' %}<image>\n{% elif item['type'] == "
    "'text' %}{{ item['text'] }}{% endif %}{% endfor %}{% if "
    "message['role'] == 'user' %} {% else %}{{ eos_token }}{% endif %}"
    "{% endfor %}{% if add_generation_prompt %}ASSISTANT:{% endif %}")
DEFAULT_VLM = 'llava-hf/llava-1.5-7b-hf'
BACKENDS = ('vlm', 'llava', 'attributes')
IMAGE_FITS = ('pad', 'crop')

REWRITE_PROMPT = (
    'Extract the attributes of the person described below as one JSON '
    'object with exactly these keys: "gender" ("male", "female" or '
    '"unknown"), "hair" (e.g. "short", "long"), "upper_type" (e.g. "top", '
    '"jacket", "shirt"), "upper_color", "upper_pattern" ("plain", '
    '"striped", "checked", "textured" or "unknown"), "lower_type" (e.g. '
    '"trousers", "shorts", "skirt"), "lower_color", "shoes" (the shoe '
    'colour), "bag" ("none", "backpack", "handbag" or another bag). Use '
    '"unknown" for anything the description does not say. Answer with the '
    'JSON object only.\n\nDescription: {caption}')

UNKNOWN = ('', 'unknown', 'none given', 'n/a', 'unspecified', None)
_PID_DIR = re.compile(r'^\d+$')


# --------------------------------------------------------------------------
# The fixed sentence template
# --------------------------------------------------------------------------
def _known(value) -> Optional[str]:
    if value is None:
        return None
    value = str(value).strip().lower()
    return None if value in UNKNOWN else value


def _article(phrase: str) -> str:
    return 'an' if phrase[:1] in 'aeiou' else 'a'


def template_sentence(attrs: Dict[str, str],
                      modality: str,
                      purify: bool = True) -> str:
    """Render an attribute record as EEES's fixed sentence.

    ``A {woman|man|person} with {hair} hair, wearing a {colour} {pattern}
    {upper_type}, {colour} {lower_type} and {colour} shoes, carrying a
    {bag}.`` Unknown attributes are left out. Infrared sentences leave the
    colour fields out and, with ``purify``, go through
    :func:`~mmvireid.datasets.descriptions.strip_colour_words`, so a colour
    inside another field ("short black hair", a "red backpack") goes too.
    ``upper_type`` defaults to "top", ``lower_type`` to "trousers"; a
    "plain" pattern is not written.

    Args:
        attrs (dict): ``gender``, ``hair``, ``upper_color``,
            ``upper_pattern``, ``lower_color``, ``shoes`` (colour), ``bag``,
            optionally ``upper_type`` and ``lower_type``.
        modality (str): ``'vis'`` or ``'ir'``.
        purify (bool): Filter colour words out of an infrared sentence.
            Defaults to True (the tool filters, and counts, itself).

    Returns:
        str: One sentence.
    """
    from mmvireid.datasets.descriptions import strip_colour_words
    if modality not in MODALITIES:
        raise ValueError(f'modality must be "vis" or "ir", got {modality!r}')
    colour = (lambda key: _known(attrs.get(key))) if modality == VIS \
        else (lambda key: None)
    person = {'female': 'woman', 'male': 'man'}.get(
        _known(attrs.get('gender')), 'person')
    hair = _known(attrs.get('hair'))
    pattern = _known(attrs.get('upper_pattern'))
    if pattern == 'plain':
        pattern = None
    top = ' '.join(
        w for w in (colour('upper_color'), pattern,
                    _known(attrs.get('upper_type')) or 'top') if w)
    bottom = ' '.join(
        w for w in (colour('lower_color'),
                    _known(attrs.get('lower_type')) or 'trousers') if w)
    shoes = ' '.join(w for w in (colour('shoes'), 'shoes') if w)
    bag = _known(attrs.get('bag'))
    if bag in ('none', 'no', 'no bag', 'false'):
        bag = None
    carry = f', carrying {_article(bag)} {bag}' if bag else ''
    with_hair = f' with {hair} hair,' if hair else ''
    text = (f'A {person}{with_hair} wearing {_article(top)} {top}, {bottom} '
            f'and {shoes}{carry}.')
    if modality == IR and purify:
        text = strip_colour_words(text)
    return text


# --------------------------------------------------------------------------
# Images to describe
# --------------------------------------------------------------------------
@dataclass
class ImageItem:
    """One train image: its description key, full path and modality."""
    key: str
    path: str
    modality: str


def train_items(cfg, data_root: Optional[str] = None) -> tuple:
    """List the train images of a config, in dataset order.

    Args:
        cfg (mmengine.Config): A config with ``train_dataloader.dataset``.
        data_root (str, optional): Overrides the dataset's ``data_root``.

    Returns:
        tuple: ``(items, data_root, descriptions)`` with ``items`` a list of
        :class:`ImageItem` and ``descriptions`` the dataset's
        ``descriptions`` setting (None if unset).
    """
    import copy

    from mmvireid.datasets.descriptions import normalize_key
    from mmvireid.registry import DATASETS
    from mmvireid.utils import register_all_modules
    register_all_modules(init_default_scope=True)
    ds_cfg = copy.deepcopy(cfg.train_dataloader.dataset)
    if 'data_root' not in ds_cfg:
        raise ValueError(
            'train_dataloader.dataset has no data_root (a wrapped dataset '
            'such as ConcatDataset?); point this tool at a config whose '
            'train set is one VI-ReID dataset.')
    if data_root is not None:
        ds_cfg['data_root'] = data_root
    descriptions = ds_cfg.pop('descriptions', None)
    ds_cfg.update(pipeline=[], split='train', lazy_init=False)
    dataset = DATASETS.build(ds_cfg)
    root = dataset.data_root
    items = []
    for idx in range(len(dataset)):
        info = dataset.get_data_info(idx)
        key = normalize_key(osp.relpath(info['img_path'], root))
        items.append(ImageItem(key, info['img_path'], info['modality']))
    return items, root, descriptions


def sample_both_modalities(items: Sequence[ImageItem],
                           limit: int) -> List[ImageItem]:
    """``limit`` items drawn evenly from both modalities.

    Half of the budget goes to each modality (the rest to the other when
    one has fewer images); within a modality the picks are spread evenly
    over the dataset order, so they cover many identities. Deterministic.

    Args:
        items (Sequence[ImageItem]): Candidates, in dataset order.
        limit (int): How many to keep.

    Returns:
        list[ImageItem]: The picks, visible and infrared alternating.
    """
    if limit >= len(items):
        return list(items)
    groups = {m: [it for it in items if it.modality == m]
              for m in MODALITIES}
    take = {VIS: (limit + 1) // 2, IR: limit // 2}
    for mod, other in ((VIS, IR), (IR, VIS)):
        spare = take[mod] - len(groups[mod])
        if spare > 0:
            take[mod] -= spare
            take[other] += spare
    picks = {}
    for mod, group in groups.items():
        n = min(take[mod], len(group))
        picks[mod] = [group[(j * len(group)) // n] for j in range(n)]
    out = []
    for j in range(max(len(p) for p in picks.values())):
        out.extend(p[j] for p in (picks[VIS], picks[IR]) if j < len(p))
    return out


def parse_shard(text: Optional[str]) -> Optional[Tuple[int, int]]:
    """``'I/N'`` -> ``(I, N)`` with ``0 <= I < N``; None stays None."""
    from mmvireid.utils.tool_utils import UserInputError
    if text is None:
        return None
    match = re.fullmatch(r'\s*(\d+)\s*/\s*(\d+)\s*', text)
    if match is None:
        raise UserInputError(f'--shard must be I/N (e.g. 0/4), got {text!r}')
    index, count = int(match.group(1)), int(match.group(2))
    if count < 1 or not 0 <= index < count:
        raise UserInputError(f'--shard {text}: I must be in 0..N-1 (the '
                             'shards of 4 jobs are 0/4, 1/4, 2/4 and 3/4)')
    return index, count


def shard_path(out: str, index: int, count: int) -> str:
    """The file of shard ``index`` of ``count``, beside ``out``."""
    stem, ext = osp.splitext(out)
    return f'{stem}.shard-{index}-of-{count}{ext or ".json"}'


def shard_files(out: str) -> List[str]:
    """The shard files of ``out`` that exist, in shard order."""
    stem, ext = osp.splitext(out)
    pattern = re.compile(re.escape(osp.basename(stem)) +
                         r'\.shard-(\d+)-of-(\d+)' + re.escape(ext or '.json')
                         + '$')
    found = []
    for path in glob.glob(f'{glob.escape(stem)}.shard-*-of-*'):
        match = pattern.match(osp.basename(path))
        if match:
            found.append((int(match.group(2)), int(match.group(1)), path))
    return [p for _, _, p in sorted(found)]


# --------------------------------------------------------------------------
# Backends: describe(items) -> texts
# --------------------------------------------------------------------------
class AttributesBackend:
    """Sentences from an attribute table (``attributes.json``).

    Args:
        table_path (str): JSON ``{person id: {attribute: value}}``; ids are
            matched as integers, so ``"7"`` and ``"0007"`` are the same.
        pid_regex (str, optional): Regular expression with one group that
            captures the person id from the relative image path. Defaults
            to None: the name of the folder holding the image.
    """

    def __init__(self, table_path: str, pid_regex: Optional[str] = None):
        if not osp.isfile(table_path):
            raise FileNotFoundError(
                f'The attribute table "{table_path}" does not exist. The toy '
                'generator (tools/dataset_converters/make_toy_vireid.py) '
                'writes one as <data_root>/attributes.json; pass another '
                'with --attributes, or describe real images with --backend '
                'vlm.')
        with open(table_path, 'r', encoding='utf-8') as f:
            table = json.load(f)
        if not isinstance(table, dict):
            raise ValueError(f'The attribute table "{table_path}" must hold '
                             'one JSON object {person id: {attribute: '
                             'value}}.')
        self.table_path = table_path
        self.table = {}
        for pid, attrs in table.items():
            try:
                self.table[int(pid)] = attrs
            except ValueError:
                raise ValueError(
                    f'The attribute table "{table_path}" has the key '
                    f'"{pid}", which is not an integer person id.') from None
        self.pid_regex = re.compile(pid_regex) if pid_regex else None

    def person_id(self, key: str) -> int:
        """The person id of a relative image path."""
        if self.pid_regex is not None:
            match = self.pid_regex.search(key)
            if match is None or not match.groups():
                raise ValueError(f'--pid-regex "{self.pid_regex.pattern}" '
                                 f'captures no person id in "{key}".')
            return int(match.group(1))
        folder = key.split('/')[-2] if '/' in key else ''
        if not _PID_DIR.match(folder):
            raise ValueError(
                f'Cannot read a person id from "{key}": the folder holding '
                'the image is not a number. Pass --pid-regex with one group '
                'capturing the id.')
        return int(folder)

    def describe(self, items: Sequence[ImageItem]) -> List[str]:
        texts = []
        for item in items:
            pid = self.person_id(item.key)
            if pid not in self.table:
                raise ValueError(
                    f'Person {pid} (image "{item.key}") is not in the '
                    f'attribute table "{self.table_path}".')
            texts.append(
                template_sentence(self.table[pid], item.modality,
                                  purify=False))
        return texts


def _import_transformers():
    from mmvireid.utils.tool_utils import UserInputError
    try:
        import transformers
    except ImportError:
        raise UserInputError(
            'The vlm backend needs Hugging Face transformers, an optional '
            'dependency: pip install -r requirements/optional.txt (or pip '
            'install "transformers>=4.56").') from None
    return transformers


def _resolve_device(device: str) -> str:
    import torch
    if device == 'auto':
        return 'cuda' if torch.cuda.is_available() else 'cpu'
    return device


def resolve_dtype(dtype: str, device: str):
    """The torch dtype of ``--dtype`` on ``device``.

    ``'auto'``: bfloat16 on a GPU that supports it, else float16 on a GPU,
    float32 on the CPU.
    """
    import torch
    if dtype == 'auto':
        if device.startswith('cuda'):
            return torch.bfloat16 if torch.cuda.is_bf16_supported() \
                else torch.float16
        return torch.float32
    return dict(
        bfloat16=torch.bfloat16, float16=torch.float16,
        float32=torch.float32)[dtype]


def pad_to_square(image, fill: Tuple[int, int, int]):
    """Pad a PIL image to a square, centred, with the colour ``fill``.

    LLaVA-1.5's "pad" image mode (``expand2square``): a processor that
    resizes the short side and centre-crops a square then sees the whole
    image, scaled down, instead of its middle.

    Args:
        image (PIL.Image.Image): An RGB image of size (W, H).
        fill (tuple[int, int, int]): RGB padding colour, 0..255.

    Returns:
        PIL.Image.Image: The image on a (max(W, H), max(W, H)) canvas.
    """
    from PIL import Image
    width, height = image.size
    if width == height:
        return image
    side = max(width, height)
    canvas = Image.new(image.mode, (side, side), fill)
    canvas.paste(image, ((side - width) // 2, (side - height) // 2))
    return canvas


def pad_colour(processor, image) -> Tuple[int, int, int]:
    """The processor's normalisation mean as RGB 0..255 (what LLaVA-1.5
    pads with: zero after normalisation), else the image's mean colour."""
    mean = getattr(getattr(processor, 'image_processor', None),
                   'image_mean', None)
    try:
        values = [float(x) for x in mean]
    except TypeError:
        values = []
    if len(values) == 3:
        scale = 255 if max(values) <= 1 else 1
        return tuple(int(round(v * scale)) for v in values)
    from PIL import ImageStat
    return tuple(int(round(v)) for v in ImageStat.Stat(image).mean[:3])


class VLMCaptioner:
    """Any image-text-to-text model of transformers, as
    ``captioner(images, prompts) -> texts``.

    Loads ``AutoProcessor`` and ``AutoModelForImageTextToText`` by name
    (a hub id or a local folder); :meth:`from_model` wraps a model and
    processor built elsewhere, with the same options. Each prompt becomes a
    one-turn conversation ``[{'role': 'user', 'content': [{'type':
    'image'}, {'type': 'text', 'text': prompt}]}]`` rendered by the
    processor's chat template (or ``prompt_format`` when given). A batch is
    padded on the left and decoded greedily; only the new tokens are
    returned.

    Args:
        model_name (str): Hub id or folder of the model and its processor.
        device (str): ``'auto'`` (the GPU when present), ``'cuda'``,
            ``'cuda:1'``, ``'cpu'``. Defaults to 'auto'.
        dtype (str): ``'auto'``, ``'bfloat16'``, ``'float16'`` or
            ``'float32'`` (see :func:`resolve_dtype`). Defaults to 'auto'.
        max_new_tokens (int): Defaults to 96.
        image_fit (str): ``'pad'`` (pad to a square with the mean colour,
            the whole person reaches the model) or ``'crop'`` (the image as
            it is: the processor's own resize / crop). Defaults to 'pad'.
        prompt_format (str, optional): A format with ``{prompt}`` used
            instead of the chat template (it must hold the model's image
            token). Defaults to None.
        trust_remote_code (bool): Passed to ``from_pretrained``.
    """

    def __init__(self,
                 model_name: str,
                 device: str = 'auto',
                 dtype: str = 'auto',
                 max_new_tokens: int = 96,
                 image_fit: str = 'pad',
                 prompt_format: Optional[str] = None,
                 trust_remote_code: bool = False):
        self._set_options(device, dtype, max_new_tokens, image_fit,
                          prompt_format)
        transformers = _import_transformers()
        # the processor is checked before the (large) model is loaded
        self._set_processor(
            transformers.AutoProcessor.from_pretrained(
                model_name, trust_remote_code=trust_remote_code),
            f'The processor of "{model_name}"')
        self._set_model(
            transformers.AutoModelForImageTextToText.from_pretrained(
                model_name,
                dtype=self.dtype,
                trust_remote_code=trust_remote_code))

    @classmethod
    def from_model(cls,
                   model,
                   processor,
                   device: str = 'auto',
                   dtype: str = 'auto',
                   max_new_tokens: int = 96,
                   image_fit: str = 'pad',
                   prompt_format: Optional[str] = None) -> 'VLMCaptioner':
        """A captioner around a model and processor already built (e.g. a
        random-weight model of a given architecture, or one loaded with
        options of its own); the options are those of the class.

        The model is cast to ``dtype``, moved to ``device`` and put in eval
        mode; the processor's tokenizer is set to pad on the left (both in
        place). ``trust_remote_code`` has no meaning here: nothing is
        loaded.

        Args:
            model (transformers.PreTrainedModel): An image-text-to-text
                model (``generate`` takes the processor's outputs).
            processor (transformers.ProcessorMixin): Its processor, with a
                tokenizer and a chat template (or pass ``prompt_format``).

        Returns:
            VLMCaptioner: Describes images as one loaded by name would.
        """
        # __init__ loads by name; the shared setup below is all it does
        # besides loading
        captioner = cls.__new__(cls)
        captioner._set_options(device, dtype, max_new_tokens, image_fit,
                               prompt_format)
        captioner._set_processor(processor, 'The processor')
        captioner._set_model(model.to(captioner.dtype))
        return captioner

    def _set_options(self, device: str, dtype: str, max_new_tokens: int,
                     image_fit: str, prompt_format: Optional[str]) -> None:
        """Check and store the options (before anything is loaded)."""
        from mmvireid.utils.tool_utils import UserInputError
        if image_fit not in IMAGE_FITS:
            raise ValueError(f'image_fit must be one of {IMAGE_FITS}, got '
                             f'{image_fit!r}')
        if prompt_format is not None and '{prompt}' not in prompt_format:
            raise UserInputError('--prompt-format must contain "{prompt}", '
                                 f'got {prompt_format!r}')
        self.device = _resolve_device(device)
        self.dtype = resolve_dtype(dtype, self.device)
        self.max_new_tokens = max_new_tokens
        self.image_fit = image_fit
        self.prompt_format = prompt_format

    def _set_processor(self, processor, described_as: str) -> None:
        """Check the processor (a tokenizer; a chat template unless
        ``prompt_format``) and make its tokenizer pad on the left."""
        from mmvireid.utils.tool_utils import UserInputError
        tokenizer = getattr(processor, 'tokenizer', None)
        if tokenizer is None:
            raise UserInputError(
                f'{described_as} has no tokenizer; the vlm backend needs an '
                'image-text-to-text model.')
        tokenizer.padding_side = 'left'  # prompts of a batch end together
        if tokenizer.pad_token is None:
            tokenizer.pad_token = tokenizer.eos_token
        if self.prompt_format is None and not getattr(processor,
                                                      'chat_template', None):
            raise UserInputError(
                f'{described_as} has no chat template; pass the '
                'conversation format with --prompt-format, e.g. '
                f'"{LLAVA_FORMAT}" for LLaVA-1.5.')
        self.processor = processor
        self.tokenizer = tokenizer

    def _set_model(self, model) -> None:
        """The model on ``self.device``, in eval mode."""
        self.model = model.to(self.device)
        self.model.eval()

    def render_prompt(self, prompt: str) -> str:
        """One user turn with one image, ready for generation."""
        if self.prompt_format is not None:
            return self.prompt_format.format(prompt=prompt)
        conversation = [
            dict(role='user', content=[
                dict(type='image'),
                dict(type='text', text=prompt)
            ])
        ]
        return self.processor.apply_chat_template(
            conversation, add_generation_prompt=True, tokenize=False)

    def fit(self, image):
        """The image as the processor gets it (``image_fit``)."""
        if self.image_fit == 'crop':
            return image
        return pad_to_square(image, pad_colour(self.processor, image))

    def prepare(self, images, prompts) -> dict:
        """Processor outputs of a batch, on the model's device and dtype.

        Args:
            images (list[PIL.Image.Image]): RGB images of any size.
            prompts (list[str]): One instruction per image.

        Returns:
            dict: ``input_ids [B, L]``, ``attention_mask [B, L]``,
            ``pixel_values`` (shape per model, e.g. ``[B, 3, S, S]``) and
            whatever else the processor returns.
        """
        inputs = self.processor(
            images=[self.fit(img) for img in images],
            text=[self.render_prompt(p) for p in prompts],
            return_tensors='pt',
            padding=True)
        out = {}
        for key, value in inputs.items():
            if hasattr(value, 'to'):
                value = value.to(self.device)
                if value.is_floating_point():
                    value = value.to(self.dtype)
            out[key] = value
        return out

    def __call__(self, images, prompts) -> List[str]:
        import torch
        inputs = self.prepare(images, prompts)
        with torch.inference_mode():
            out = self.model.generate(
                **inputs,
                max_new_tokens=self.max_new_tokens,
                do_sample=False,
                pad_token_id=self.tokenizer.pad_token_id)
        new_tokens = out[:, inputs['input_ids'].shape[1]:]
        return self.processor.batch_decode(
            new_tokens, skip_special_tokens=True)


def load_vlm(model_name: str, device: str = 'auto', dtype: str = 'auto',
             max_new_tokens: int = 96, image_fit: str = 'pad',
             prompt_format: Optional[str] = None,
             trust_remote_code: bool = False) -> Callable:
    """A :class:`VLMCaptioner` (a function so tests can replace it)."""
    return VLMCaptioner(model_name, device, dtype, max_new_tokens, image_fit,
                        prompt_format, trust_remote_code)


def load_rewriter(model_name: str, device: str = 'auto', dtype: str = 'auto',
                  max_new_tokens: int = 160,
                  trust_remote_code: bool = False) -> Callable:
    """Load an instruction LLM; returns ``generate(prompts) -> texts``."""
    import torch
    transformers = _import_transformers()
    device = _resolve_device(device)
    torch_dtype = resolve_dtype(dtype, device)
    tokenizer = transformers.AutoTokenizer.from_pretrained(
        model_name, trust_remote_code=trust_remote_code)
    tokenizer.padding_side = 'left'
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    model = transformers.AutoModelForCausalLM.from_pretrained(
        model_name, dtype=torch_dtype,
        trust_remote_code=trust_remote_code).to(device)
    model.eval()

    @torch.inference_mode()
    def generate(prompts) -> List[str]:
        chats = [
            tokenizer.apply_chat_template([dict(role='user', content=p)],
                                          tokenize=False,
                                          add_generation_prompt=True)
            for p in prompts
        ]
        inputs = tokenizer(
            chats, return_tensors='pt', padding=True,
            add_special_tokens=False).to(device)
        out = model.generate(
            **inputs, max_new_tokens=max_new_tokens, do_sample=False,
            pad_token_id=tokenizer.pad_token_id)
        return tokenizer.batch_decode(
            out[:, inputs['input_ids'].shape[1]:], skip_special_tokens=True)

    return generate


def clean_caption(text: str) -> str:
    """One line, single spaces, no leading "ASSISTANT:" echo."""
    text = re.sub(r'^\s*(ASSISTANT|Assistant|assistant)\s*:\s*', '', text)
    return ' '.join(text.split())


def parse_attributes(text: str) -> Optional[dict]:
    """The first JSON object in an LLM answer, or None."""
    match = re.search(r'\{.*\}', text, flags=re.S)
    if match is None:
        return None
    try:
        record = json.loads(match.group(0))
    except json.JSONDecodeError:
        return None
    return record if isinstance(record, dict) else None


class VLMBackend:
    """VLM captions, optionally rewritten into the fixed template.

    Args:
        generate (callable): ``generate(images, prompts) -> texts`` (a
            :class:`VLMCaptioner`); injected so tests can fake the model.
        rewrite (callable, optional): ``rewrite(prompts) -> texts`` (see
            :func:`load_rewriter`). When given, every caption is turned into
            an attribute record and rendered by :func:`template_sentence`;
            a caption whose answer holds no JSON object is kept as it is
            (and counted in ``num_rewrite_failures``).
        vis_prompt, ir_prompt (str): The instructions per modality.

    Infrared texts are filtered for colour words afterwards by
    :func:`generate_descriptions`, whichever path made them.
    """

    def __init__(self,
                 generate: Callable,
                 rewrite: Optional[Callable] = None,
                 vis_prompt: str = VIS_PROMPT,
                 ir_prompt: str = IR_PROMPT):
        self.generate = generate
        self.rewrite = rewrite
        self.prompts = dict(vis=vis_prompt, ir=ir_prompt)
        self.num_rewrite_failures = 0

    def describe(self, items: Sequence[ImageItem]) -> List[str]:
        from PIL import Image
        images = []
        for item in items:
            with Image.open(item.path) as img:
                images.append(img.convert('RGB'))
        prompts = [self.prompts[item.modality] for item in items]
        captions = [clean_caption(t) for t in self.generate(images, prompts)]
        if len(captions) != len(items):
            raise RuntimeError(f'The captioner returned {len(captions)} texts '
                               f'for {len(items)} images.')
        if self.rewrite is None:
            return captions
        answers = self.rewrite(
            [REWRITE_PROMPT.format(caption=c) for c in captions])
        texts = []
        for item, caption, answer in zip(items, captions, answers):
            record = parse_attributes(answer)
            if record is None:
                self.num_rewrite_failures += 1
                texts.append(caption)
            else:
                texts.append(
                    template_sentence(record, item.modality, purify=False))
        return texts


#: The old name of :class:`VLMBackend`.
LlavaBackend = VLMBackend


# --------------------------------------------------------------------------
# The resumable, interruptible writer
# --------------------------------------------------------------------------
class Interrupted(Exception):
    """SIGTERM or SIGINT arrived; what was described has been saved."""

    def __init__(self, signum: int):
        self.signum = signum
        super().__init__(f'interrupted by {signal.Signals(signum).name}')


@contextmanager
def save_on_signals():
    """Turn SIGTERM and SIGINT into :class:`Interrupted` (in the main
    thread), so the caller's ``finally`` saves before the process exits. A
    second signal during the save is ignored; the previous handlers come
    back on exit."""
    import threading
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {}

    def handler(signum, frame):
        for sig in previous:
            signal.signal(sig, signal.SIG_IGN)
        raise Interrupted(signum)

    for sig in (signal.SIGTERM, signal.SIGINT):
        previous[sig] = signal.signal(sig, handler)
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


def read_existing(path: str) -> Dict[str, str]:
    """Descriptions already in ``path`` (empty if it does not exist)."""
    if not osp.isfile(path):
        return {}
    from mmvireid.datasets.descriptions import read_descriptions
    return read_descriptions(path)


def write_json_atomic(path: str, table: Dict[str, str]) -> None:
    """Write ``table`` to ``path`` through a temporary file and a rename,
    so readers (and a resumed run) never see a half-written file."""
    from mmvireid.utils.fileio import atomic_write
    atomic_write(
        path,
        json.dumps(table, indent=1, sort_keys=True, ensure_ascii=False) +
        '\n')


def _duration(seconds: float) -> str:
    seconds = int(round(seconds))
    hours, rest = divmod(seconds, 3600)
    return f'{hours}:{rest // 60:02d}:{rest % 60:02d}'


def progress_line(done: int, total: int, seconds: float) -> str:
    """``described 640/34167 (1.9 %), 12.30 img/s, ETA 0:45:25``."""
    rate = done / seconds if seconds > 0 else 0.0
    eta = _duration((total - done) / rate) if rate > 0 else '?'
    pct = 100 * done / total if total else 100.0
    return (f'described {done}/{total} ({pct:.1f} %), {rate:.2f} img/s, '
            f'ETA {eta}')


def generate_descriptions(items: Sequence[ImageItem],
                          backend,
                          out_path: str,
                          batch_size: int = 8,
                          limit: Optional[int] = None,
                          save_every: int = 10,
                          overwrite: bool = False,
                          progress: bool = True,
                          skip: Optional[Dict[str, str]] = None) -> dict:
    """Describe the images of ``items`` that ``out_path`` lacks.

    Every infrared text (new or already in the file) goes through
    :func:`~mmvireid.datasets.descriptions.strip_colour_words`. A text that
    is empty after cleaning is not stored.

    Args:
        items (Sequence[ImageItem]): The train images (of this shard).
        backend: An object with ``describe(items) -> texts``.
        out_path (str): The descriptions JSON (read first unless
            ``overwrite``, then rewritten atomically).
        batch_size (int): Images per ``describe`` call. Defaults to 8.
        limit (int, optional): Describe at most this many images, drawn
            from both modalities (:func:`sample_both_modalities`).
        save_every (int): Write the file every this many batches (and at
            the end, on an error and on SIGTERM / SIGINT). Defaults to 10.
        overwrite (bool): Ignore an existing file. Defaults to False.
        progress (bool): Show progress. Defaults to True.
        skip (dict, optional): Texts that exist elsewhere (a shard run
            skips the images the merged file already has).

    Returns:
        dict: ``described``, ``skipped`` (already done), ``remaining`` (left
        for a later run), ``total``, ``empty`` (texts empty after cleaning,
        not stored), ``ir_filtered`` (infrared texts the colour filter
        changed), ``seconds`` and ``images_per_s``.

    Raises:
        Interrupted: On SIGTERM / SIGINT, after saving.
    """
    from mmvireid.datasets.descriptions import (purify_infrared,
                                                strip_colour_words)
    if batch_size < 1 or save_every < 1:
        raise ValueError('batch_size and save_every must be >= 1, got '
                         f'{batch_size} and {save_every}')
    modality = {it.key: it.modality for it in items}
    table = {} if overwrite else read_existing(out_path)
    # texts an older run stored: infrared ones are made colour-free too
    table, changed = purify_infrared(table, modality)
    ir_filtered = len(changed)
    done = dict(skip or {})
    todo = [
        it for it in items
        if not table.get(it.key, '').strip() and not done.get(it.key, '')
        .strip()
    ]
    skipped = len(items) - len(todo)
    if limit is not None:
        todo = sample_both_modalities(todo, max(limit, 0))
    interactive = progress and sys.stderr.isatty()
    bar = tqdm(
        total=len(todo), unit='img', desc='describing', dynamic_ncols=True,
        disable=not interactive,
        bar_format='{desc}: {percentage:3.0f}%|{bar}| {n_fmt}/{total_fmt} '
        '[{elapsed}<{remaining}, {rate_fmt}]')
    described = empty = 0
    dirty = bool(changed) or (not osp.isfile(out_path) and not todo)
    start_time = time.monotonic()
    # the handlers stay on through the final save, which a second signal
    # cannot interrupt (they ignore it once the first has arrived)
    with save_on_signals():
        try:
            for n, start in enumerate(range(0, len(todo), batch_size), 1):
                batch = todo[start:start + batch_size]
                texts = backend.describe(batch)
                if len(texts) != len(batch):
                    raise RuntimeError(
                        f'The backend returned {len(texts)} texts for '
                        f'{len(batch)} images.')
                for item, text in zip(batch, texts):
                    text = ' '.join((text or '').split())
                    if item.modality == IR:
                        clean = strip_colour_words(text)
                        ir_filtered += clean != text
                        text = clean
                    if not text:
                        empty += 1
                        continue
                    table[item.key] = text
                    described += 1
                    dirty = True
                bar.update(len(batch))
                if n % save_every == 0:
                    write_json_atomic(out_path, table)
                    dirty = False
                    if progress and not interactive:
                        print(
                            progress_line(start + len(batch), len(todo),
                                          time.monotonic() - start_time),
                            file=sys.stderr, flush=True)
        finally:
            bar.close()
            # keep what was described before an error, a kill or Ctrl-C
            if dirty:
                write_json_atomic(out_path, table)
    seconds = time.monotonic() - start_time
    return dict(
        described=described,
        skipped=skipped,
        remaining=len(items) - skipped - described,
        total=len(items),
        empty=empty,
        ir_filtered=ir_filtered,
        seconds=round(seconds, 3),
        images_per_s=round((described + empty) / seconds, 3)
        if seconds > 0 else 0.0)


def merge_shards(items: Sequence[ImageItem], out_path: str) -> dict:
    """Join the shard files of ``out_path`` (and ``out_path`` itself).

    Texts already in ``out_path`` win; of two shards with different texts
    for one image, the first in shard order wins (reported). The infrared
    filter runs over the result, which is written atomically. The shard
    files stay (delete them once the merged file is checked).

    Returns:
        dict: ``shards`` (files read), ``merged`` (texts taken from
        shards), ``conflicts``, ``total`` (train images), ``missing``
        (train images without a text), ``ir_filtered``.
    """
    from mmvireid.datasets.descriptions import purify_infrared
    from mmvireid.utils.tool_utils import UserInputError
    files = shard_files(out_path)
    if not files:
        stem, ext = osp.splitext(out_path)
        raise UserInputError(
            f'--merge: no shard files "{stem}.shard-I-of-N{ext}" next to '
            f'"{out_path}"; run the tool with --shard I/N first.')
    table = read_existing(out_path)
    merged = conflicts = 0
    for path in files:
        for key, text in read_existing(path).items():
            if not text.strip():
                continue
            if key not in table or not table[key].strip():
                table[key] = text
                merged += 1
            elif table[key] != text:
                conflicts += 1
                if conflicts == 1:
                    print(f'WARNING: "{key}" has another text in "{path}" '
                          'than earlier; the first is kept.', file=sys.stderr)
    table, changed = purify_infrared(table,
                                     {it.key: it.modality for it in items})
    write_json_atomic(out_path, table)
    missing = sum(1 for it in items if not table.get(it.key, '').strip())
    return dict(shards=files, merged=merged, conflicts=conflicts,
                total=len(items), missing=missing, ir_filtered=len(changed))


def check_descriptions(items: Sequence[ImageItem], path: str) -> dict:
    """Audit ``path`` against the train images (see
    :func:`mmvireid.datasets.descriptions.audit_descriptions`); adds
    ``ok``: no image without a text, no empty text, no colour word in an
    infrared text."""
    from mmvireid.datasets.descriptions import (GENERATE_HINT,
                                                audit_descriptions,
                                                read_descriptions)
    if not osp.isfile(path):
        raise FileNotFoundError(
            f'--check: the descriptions file "{path}" does not exist. '
            f'{GENERATE_HINT}')
    report = audit_descriptions(
        read_descriptions(path), {it.key: it.modality for it in items})
    report['ok'] = all(report[m]['missing'] == 0 and report[m]['empty'] == 0
                       for m in MODALITIES) and \
        report[IR]['colour_texts'] == 0
    return report


def format_check(report: dict, path: str) -> str:
    """The audit as a small table."""
    from mmvireid.datasets.descriptions import LONG_TEXT_WORDS
    rows = [
        ('train images', 'images'), ('with a text', 'texts'),
        ('missing', 'missing'), ('empty', 'empty'),
        ('naming a colour', 'colour_texts'), ('distinct texts', 'distinct'),
        ('sharing their text', 'shared'),
        (f'over {LONG_TEXT_WORDS} words', 'long')
    ]
    lines = [f'{path}:', f'{"":<22}{"visible":>10}{"infrared":>10}']
    for name, key in rows:
        lines.append(f'{name:<22}{report["vis"][key]:>10}'
                     f'{report["ir"][key]:>10}')
    for mod in MODALITIES:
        w = report[mod]['words']
        lines.append(f'words per text, {mod:<3}: min {w["min"]}, mean '
                     f'{w["mean"]:.1f}, median {w["median"]:g}, max '
                     f'{w["max"]}')
    if report[IR]['colour_texts']:
        words = ', '.join(f'{w} ({n})' for w, n in list(
            report[IR]['colour_words'].items())[:8])
        lines.append(f'colour words in infrared texts: {words}; e.g. '
                     f'{report["ir"]["examples"]["colour"]}. Rerun the tool '
                     '(any backend, nothing left to describe) to filter '
                     'them.')
    for mod in MODALITIES:
        for kind in ('missing', 'empty'):
            if report[mod]['examples'][kind]:
                lines.append(f'{kind} ({mod}): '
                             f'{report[mod]["examples"][kind]} ...')
    if report['extra']:
        lines.append(f'{report["extra"]} keys are no train image of this '
                     'config (other splits, or another data_root).')
    lines.append('OK' if report['ok'] else 'NOT OK')
    return '\n'.join(lines)


# --------------------------------------------------------------------------
# CLI
# --------------------------------------------------------------------------
def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    from mmengine.config import DictAction
    parser = argparse.ArgumentParser(
        description='Write descriptions.json {relative image path: text} '
        'for every train image of a config (EEES).')
    parser.add_argument('config', help='train config, e.g. '
                        'configs/eees_sysu.py')
    parser.add_argument(
        '--backend', choices=BACKENDS,
        help='vlm (alias llava): a vision-language model, for real data; '
        'attributes: the toy data\'s attributes.json. Required to describe')
    parser.add_argument(
        '--check', action='store_true',
        help='audit the existing file per modality and exit (1 if an image '
        'lacks a text, a text is empty or an infrared text names a colour)')
    parser.add_argument(
        '--merge', action='store_true',
        help='join the --shard files into the output and exit')
    parser.add_argument(
        '--shard', metavar='I/N', help='describe shard I (0-based) of N '
        'into <out>.shard-I-of-N.json; --merge joins them')
    parser.add_argument(
        '--out', help='output JSON; default: the dataset\'s descriptions= '
        'setting, relative to its data_root (descriptions.json)')
    parser.add_argument('--data-root', help='override the dataset data_root')
    parser.add_argument(
        '--attributes', help='attributes backend: the attribute table '
        '(default <data_root>/attributes.json)')
    parser.add_argument(
        '--pid-regex', help='attributes backend: a regular expression with '
        'one group capturing the person id from the relative image path '
        '(default: the image\'s folder name)')
    parser.add_argument(
        '--model', default=DEFAULT_VLM,
        help='vlm backend: Hugging Face model id or local folder of an '
        f'image-text-to-text model (default {DEFAULT_VLM})')
    parser.add_argument(
        '--image-fit', choices=IMAGE_FITS, default='pad',
        help='vlm backend: pad each image to a square with the mean colour '
        'so the whole person is seen (default), or crop: leave it to the '
        'processor (LLaVA-1.5\'s centre-crops a square)')
    parser.add_argument(
        '--dtype', choices=('auto', 'bfloat16', 'float16', 'float32'),
        default='auto', help='model dtype (auto: bf16/fp16 on a GPU, fp32 on '
        'the CPU)')
    parser.add_argument(
        '--rewrite-model', help='vlm backend: an instruction LLM that '
        'rewrites every caption into the fixed sentence template')
    parser.add_argument(
        '--prompt-format', help='vlm backend: a conversation format with '
        '"{prompt}" and the image token, instead of the processor\'s chat '
        f'template (e.g. "{LLAVA_FORMAT}")')
    parser.add_argument(
        '--trust-remote-code', action='store_true',
        help='vlm backend: allow models whose code is on the hub')
    parser.add_argument('--max-new-tokens', type=int, default=96)
    parser.add_argument(
        '--device', default='auto', help='"auto" (GPU when present), '
        '"cuda", "cuda:1", "cpu"')
    parser.add_argument('--batch-size', type=int, default=8)
    parser.add_argument(
        '--limit', type=int, help='describe at most this many images, from '
        'both modalities (a dry run to read)')
    parser.add_argument(
        '--save-every', type=int, default=10,
        help='rewrite the output every this many batches')
    parser.add_argument(
        '--overwrite', action='store_true',
        help='describe every image again, ignoring the existing file')
    parser.add_argument(
        '--no-progress', action='store_true', help='no progress output')
    parser.add_argument(
        '--cfg-options', nargs='+', action=DictAction,
        help='override config settings, key=value pairs')
    return parser.parse_args(argv)


def build_backend(args, data_root: str):
    """The backend the arguments ask for."""
    if args.backend == 'attributes':
        table = args.attributes or osp.join(data_root, 'attributes.json')
        return AttributesBackend(table, args.pid_regex)
    generate = load_vlm(args.model, args.device, args.dtype,
                        args.max_new_tokens, args.image_fit,
                        args.prompt_format, args.trust_remote_code)
    rewrite = None
    if args.rewrite_model:
        rewrite = load_rewriter(args.rewrite_model, args.device, args.dtype,
                                trust_remote_code=args.trust_remote_code)
    return VLMBackend(generate, rewrite)


def _no_backend_message(config: str, data_root: str) -> str:
    from mmvireid.datasets.descriptions import generate_command
    toy = osp.isfile(osp.join(data_root, 'attributes.json'))
    lines = [
        'Name the backend with --backend (there is no default): '
        f'{generate_command(config, "vlm")} for real images (a GPU helps)'
    ]
    if toy:
        lines.append(f'or {generate_command(config, "attributes")} '
                     f'(this data has an attributes.json)')
    return ' '.join(lines) + '.'


def main(argv: Optional[Sequence[str]] = None):
    args = parse_args(argv)
    from mmengine.config import Config

    from mmvireid.datasets.descriptions import resolve_descriptions_path
    from mmvireid.utils.tool_utils import UserInputError, run_or_explain

    def run():
        cfg = Config.fromfile(args.config)
        if args.cfg_options:
            cfg.merge_from_dict(args.cfg_options)
        if args.check and args.merge:
            raise UserInputError('--check and --merge are separate steps: '
                                 'merge first, then check.')
        shard = parse_shard(args.shard)
        items, data_root, desc = train_items(cfg, args.data_root)
        out = args.out or resolve_descriptions_path(
            desc or 'descriptions.json', data_root)
        if args.check:
            report = check_descriptions(items, out)
            print(format_check(report, out))
            return report
        if args.merge:
            summary = merge_shards(items, out)
            print(f'{out}: merged {summary["merged"]} texts from '
                  f'{len(summary["shards"])} shard files; '
                  f'{summary["missing"]} of {summary["total"]} train images '
                  f'still without a text; {summary["ir_filtered"]} infrared '
                  'texts changed by the colour filter. The shard files can '
                  'go once --check is OK.')
            return summary
        if args.backend is None:
            raise UserInputError(_no_backend_message(args.config, data_root))
        if args.backend == 'attributes' and args.rewrite_model:
            raise UserInputError('--rewrite-model applies to the vlm backend '
                                 'only.')
        target, skip = out, None
        if shard is not None:
            target = shard_path(out, *shard)
            items = items[shard[0]::shard[1]]
            skip = read_existing(out)  # described before the split
        backend = build_backend(args, data_root)
        try:
            summary = generate_descriptions(
                items,
                backend,
                target,
                batch_size=args.batch_size,
                limit=args.limit,
                save_every=args.save_every,
                overwrite=args.overwrite,
                progress=not args.no_progress,
                skip=skip)
        except Interrupted as e:
            print(f'\n{e}: the texts described so far are saved in '
                  f'"{target}"; run the same command again to resume.',
                  file=sys.stderr)
            sys.exit(128 + e.signum)
        where = f'{target} (shard {shard[0]}/{shard[1]})' if shard else target
        print(f'{where}: described {summary["described"]}, already there '
              f'{summary["skipped"]}, still missing {summary["remaining"]} '
              f'of {summary["total"]} train images '
              f'({summary["images_per_s"]:.2f} img/s); '
              f'{summary["ir_filtered"]} infrared texts changed by the '
              'colour filter.')
        if summary['empty']:
            print(f'{summary["empty"]} texts were empty after cleaning and '
                  'were not stored; a rerun describes those images again.',
                  file=sys.stderr)
        failures = getattr(backend, 'num_rewrite_failures', 0)
        if failures:
            print(f'{failures} captions could not be rewritten into the '
                  'template and were kept as captioned.', file=sys.stderr)
        return summary

    result = run_or_explain(run)
    if args.check and not result['ok']:
        sys.exit(1)
    return result


if __name__ == '__main__':
    main()
