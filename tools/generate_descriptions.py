# Copyright (c) mmvireid contributors. All rights reserved.
"""Write the per-image text descriptions EEES trains with.

The output is one JSON object ``{relative image path: text}`` covering every
image of the config's **train** split (keys relative to its ``data_root``,
'/' separators), at the path the config's ``descriptions=`` names (default
``<data_root>/descriptions.json``)::

    # toy data: sentences from the attribute table the generator ships
    python tools/generate_descriptions.py configs/eees_toy.py \\
        --backend attributes

    # real data: LLaVA captions (GPU recommended; pip install transformers)
    python tools/generate_descriptions.py configs/eees_sysu.py \\
        --backend llava --model llava-hf/llava-1.5-7b-hf --batch-size 16
    # ... optionally rewritten by an instruction LLM into the fixed template
    python tools/generate_descriptions.py configs/eees_sysu.py \\
        --backend llava --rewrite-model Qwen/Qwen2.5-1.5B-Instruct

Backends:

* ``attributes``: builds each sentence from ``attributes.json``
  (``{person id: {gender, hair, upper_color, upper_pattern, lower_color,
  shoes, bag, [upper_type, lower_type]}}``) with :func:`template_sentence`.
  The person id is the image's folder name (``cam1/0001/0001.jpg`` ->
  ``1``) unless ``--pid-regex`` says otherwise.
* ``llava``: a Hugging Face LLaVA model captions every image. Visible images
  get :data:`VIS_PROMPT` (gender, hair, clothes *with colours*, shoes, bag),
  infrared ones :data:`IR_PROMPT`, which forbids colours (an IR camera
  cannot see them). ``--rewrite-model`` adds a second pass: an instruction
  LLM turns each caption into the attribute record of the template, so all
  texts share one sentence form, and infrared sentences carry no colour
  whatever the captioner wrote.

The run is resumable: images that already have a non-empty text in the
output file are skipped, and the file is rewritten atomically (temporary
file + rename) every ``--save-every`` batches, so an interrupted run loses
at most those batches and never leaves a truncated file. ``--limit N``
describes only the next N images (a dry run). ``transformers`` is needed
only by the ``llava`` backend.
"""
import argparse
import json
import os.path as osp
import re
import sys
from dataclasses import dataclass
from typing import Callable, Dict, List, Optional, Sequence

from tqdm import tqdm

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
#: LLaVA-1.5 conversation format; ``{prompt}`` is replaced.
LLAVA_FORMAT = 'USER: <image>\n{prompt} ASSISTANT:'

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


def template_sentence(attrs: Dict[str, str], modality: str) -> str:
    """Render an attribute record as EEES's fixed sentence.

    ``A {woman|man|person} with {hair} hair, wearing a {colour} {pattern}
    {upper_type}, {colour} {lower_type} and {colour} shoes, carrying a
    {bag}.`` Unknown attributes are left out. Infrared sentences never name
    a colour, whatever the record holds. ``upper_type`` defaults to "top",
    ``lower_type`` to "trousers"; a "plain" pattern is not written.

    Args:
        attrs (dict): ``gender``, ``hair``, ``upper_color``,
            ``upper_pattern``, ``lower_color``, ``shoes`` (colour), ``bag``,
            optionally ``upper_type`` and ``lower_type``.
        modality (str): ``'vis'`` or ``'ir'``.

    Returns:
        str: One sentence.
    """
    if modality not in ('vis', 'ir'):
        raise ValueError(f'modality must be "vis" or "ir", got {modality!r}')
    colour = (lambda key: _known(attrs.get(key))) if modality == 'vis' \
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
    return (f'A {person}{with_hair} wearing {_article(top)} {top}, {bottom} '
            f'and {shoes}{carry}.')


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
                'with --attributes.')
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
            texts.append(template_sentence(self.table[pid], item.modality))
        return texts


def _import_transformers():
    from mmvireid.utils.tool_utils import UserInputError
    try:
        import transformers
    except ImportError:
        raise UserInputError(
            'The llava backend needs Hugging Face transformers, an optional '
            'dependency: pip install -r requirements/optional.txt (or pip '
            'install "transformers>=4.40").') from None
    return transformers


def _resolve_device(device: str) -> str:
    import torch
    if device == 'auto':
        return 'cuda' if torch.cuda.is_available() else 'cpu'
    return device


def load_llava(model_name: str, device: str = 'auto',
               max_new_tokens: int = 96) -> Callable:
    """Load a LLaVA checkpoint; returns ``generate(images, prompts)``.

    fp16 on a GPU, fp32 on the CPU; greedy decoding, left padding so the
    prompts of a batch end together.
    """
    import torch
    transformers = _import_transformers()
    device = _resolve_device(device)
    dtype = torch.float16 if device.startswith('cuda') else torch.float32
    processor = transformers.AutoProcessor.from_pretrained(model_name)
    processor.tokenizer.padding_side = 'left'
    model = transformers.LlavaForConditionalGeneration.from_pretrained(
        model_name, torch_dtype=dtype, low_cpu_mem_usage=True).to(device)
    model.eval()

    @torch.no_grad()
    def generate(images, prompts) -> List[str]:
        inputs = processor(
            images=images, text=prompts, return_tensors='pt',
            padding=True).to(device)
        inputs['pixel_values'] = inputs['pixel_values'].to(dtype)
        out = model.generate(
            **inputs, max_new_tokens=max_new_tokens, do_sample=False)
        new_tokens = out[:, inputs['input_ids'].shape[1]:]
        return processor.batch_decode(new_tokens, skip_special_tokens=True)

    return generate


def load_rewriter(model_name: str, device: str = 'auto',
                  max_new_tokens: int = 160) -> Callable:
    """Load an instruction LLM; returns ``generate(prompts) -> texts``."""
    import torch
    transformers = _import_transformers()
    device = _resolve_device(device)
    dtype = torch.float16 if device.startswith('cuda') else torch.float32
    tokenizer = transformers.AutoTokenizer.from_pretrained(model_name)
    tokenizer.padding_side = 'left'
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    model = transformers.AutoModelForCausalLM.from_pretrained(
        model_name, torch_dtype=dtype, low_cpu_mem_usage=True).to(device)
    model.eval()

    @torch.no_grad()
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
    text = re.sub(r'^\s*(ASSISTANT|Assistant)\s*:\s*', '', text)
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


class LlavaBackend:
    """LLaVA captions, optionally rewritten into the fixed template.

    Args:
        generate (callable): ``generate(images, prompts) -> texts`` (see
            :func:`load_llava`); injected so tests can fake the model.
        rewrite (callable, optional): ``rewrite(prompts) -> texts`` (see
            :func:`load_rewriter`). When given, every caption is turned into
            an attribute record and rendered by :func:`template_sentence`;
            a caption whose answer holds no JSON object is kept as is (and
            counted in ``num_rewrite_failures``).
        prompt_format (str): The conversation format with ``{prompt}``.
        vis_prompt, ir_prompt (str): The instructions per modality.
    """

    def __init__(self,
                 generate: Callable,
                 rewrite: Optional[Callable] = None,
                 prompt_format: str = LLAVA_FORMAT,
                 vis_prompt: str = VIS_PROMPT,
                 ir_prompt: str = IR_PROMPT):
        if '{prompt}' not in prompt_format:
            raise ValueError('prompt_format must contain "{prompt}", got '
                             f'{prompt_format!r}')
        self.generate = generate
        self.rewrite = rewrite
        self.prompts = dict(
            vis=prompt_format.format(prompt=vis_prompt),
            ir=prompt_format.format(prompt=ir_prompt))
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
                texts.append(template_sentence(record, item.modality))
        return texts


# --------------------------------------------------------------------------
# The resumable writer
# --------------------------------------------------------------------------
def read_existing(path: str) -> Dict[str, str]:
    """Descriptions already in ``path`` (empty if it does not exist)."""
    if not osp.isfile(path):
        return {}
    from mmvireid.datasets.descriptions import read_descriptions
    return read_descriptions(path)


def write_json_atomic(path: str, table: Dict[str, str]) -> None:
    """Write ``table`` to ``path`` through a temporary file and a rename,
    so readers (and a resumed run) never see a half-written file."""
    from mmvireid.engine.hooks import atomic_write
    atomic_write(
        path,
        json.dumps(table, indent=1, sort_keys=True, ensure_ascii=False) +
        '\n')


def generate_descriptions(items: Sequence[ImageItem],
                          backend,
                          out_path: str,
                          batch_size: int = 8,
                          limit: Optional[int] = None,
                          save_every: int = 10,
                          overwrite: bool = False,
                          progress: bool = True) -> dict:
    """Describe the images of ``items`` that ``out_path`` lacks.

    Args:
        items (Sequence[ImageItem]): The train images.
        backend: An object with ``describe(items) -> texts``.
        out_path (str): The descriptions JSON (read first unless
            ``overwrite``, then rewritten atomically).
        batch_size (int): Images per ``describe`` call. Defaults to 8.
        limit (int, optional): Describe at most this many images.
        save_every (int): Write the file every this many batches (and at
            the end). Defaults to 10.
        overwrite (bool): Ignore an existing file. Defaults to False.
        progress (bool): Show a progress bar. Defaults to True.

    Returns:
        dict: ``described``, ``skipped`` (already done), ``remaining`` (left
        for a later run) and ``total``.
    """
    if batch_size < 1 or save_every < 1:
        raise ValueError('batch_size and save_every must be >= 1, got '
                         f'{batch_size} and {save_every}')
    table = {} if overwrite else read_existing(out_path)
    todo = [it for it in items if not table.get(it.key, '').strip()]
    skipped = len(items) - len(todo)
    if limit is not None:
        todo = todo[:max(limit, 0)]
    bar = tqdm(total=len(todo), unit='img', desc='describing',
               disable=not progress)
    described = 0
    try:
        for n, start in enumerate(range(0, len(todo), batch_size), 1):
            batch = todo[start:start + batch_size]
            texts = backend.describe(batch)
            for item, text in zip(batch, texts):
                if not text or not text.strip():
                    raise ValueError(f'The backend returned an empty text '
                                     f'for "{item.key}".')
                table[item.key] = text.strip()
            described += len(batch)
            bar.update(len(batch))
            if n % save_every == 0:
                write_json_atomic(out_path, table)
    finally:
        bar.close()
        # Keep what was described before an error or an interrupt.
        if described:
            write_json_atomic(out_path, table)
    if not described and not osp.isfile(out_path):
        write_json_atomic(out_path, table)
    return dict(
        described=described,
        skipped=skipped,
        remaining=len(items) - skipped - described,
        total=len(items))


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
        '--backend', choices=['attributes', 'llava'], default='attributes')
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
        '--model', default='llava-hf/llava-1.5-7b-hf',
        help='llava backend: Hugging Face model id or local folder')
    parser.add_argument(
        '--rewrite-model', help='llava backend: an instruction LLM that '
        'rewrites every caption into the fixed sentence template')
    parser.add_argument(
        '--prompt-format', default=LLAVA_FORMAT,
        help='llava backend: conversation format with "{prompt}"')
    parser.add_argument('--max-new-tokens', type=int, default=96)
    parser.add_argument(
        '--device', default='auto', help='"auto" (GPU when present), '
        '"cuda", "cuda:1", "cpu"')
    parser.add_argument('--batch-size', type=int, default=8)
    parser.add_argument(
        '--limit', type=int, help='describe at most this many images (dry '
        'run)')
    parser.add_argument(
        '--save-every', type=int, default=10,
        help='rewrite the output every this many batches')
    parser.add_argument(
        '--overwrite', action='store_true',
        help='describe every image again, ignoring the existing file')
    parser.add_argument(
        '--no-progress', action='store_true', help='no progress bar')
    parser.add_argument(
        '--cfg-options', nargs='+', action=DictAction,
        help='override config settings, key=value pairs')
    return parser.parse_args(argv)


def build_backend(args, data_root: str):
    """The backend the arguments ask for."""
    if args.backend == 'attributes':
        table = args.attributes or osp.join(data_root, 'attributes.json')
        return AttributesBackend(table, args.pid_regex)
    generate = load_llava(args.model, args.device, args.max_new_tokens)
    rewrite = None
    if args.rewrite_model:
        rewrite = load_rewriter(args.rewrite_model, args.device)
    return LlavaBackend(generate, rewrite, prompt_format=args.prompt_format)


def main(argv: Optional[Sequence[str]] = None) -> dict:
    args = parse_args(argv)
    from mmengine.config import Config

    from mmvireid.datasets.descriptions import resolve_descriptions_path
    from mmvireid.utils.tool_utils import UserInputError, run_or_explain

    def run():
        cfg = Config.fromfile(args.config)
        if args.cfg_options:
            cfg.merge_from_dict(args.cfg_options)
        items, data_root, desc = train_items(cfg, args.data_root)
        out = args.out or resolve_descriptions_path(
            desc or 'descriptions.json', data_root)
        if args.backend == 'attributes' and args.rewrite_model:
            raise UserInputError('--rewrite-model applies to the llava '
                                 'backend only.')
        backend = build_backend(args, data_root)
        summary = generate_descriptions(
            items,
            backend,
            out,
            batch_size=args.batch_size,
            limit=args.limit,
            save_every=args.save_every,
            overwrite=args.overwrite,
            progress=not args.no_progress)
        print(f'{out}: described {summary["described"]}, already there '
              f'{summary["skipped"]}, still missing {summary["remaining"]} '
              f'of {summary["total"]} train images.')
        failures = getattr(backend, 'num_rewrite_failures', 0)
        if failures:
            print(f'{failures} captions could not be rewritten into the '
                  'template and were kept as captioned.', file=sys.stderr)
        return summary

    return run_or_explain(run)


if __name__ == '__main__':
    main()
