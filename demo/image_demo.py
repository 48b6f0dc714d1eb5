# Copyright (c) mmvireid contributors. All rights reserved.
"""Search a gallery for query images and draw the ranking lists.

    python demo/image_demo.py QUERY GALLERY CONFIG_OR_NAME \\
        [--weights CKPT] [--query-modality ir] [--gallery-modality vis] \\
        [--topk 10] [--protocol sysu] [--rerank] [--out-dir outputs/rankings]

QUERY and GALLERY are image files or folders (searched recursively). The
results go to ``--out-dir``: ``rankings.json`` (every query's top-k matches
with scores) and one PNG per query (query, then matches framed green / red
when the identities are known from dataset-style paths ``camC/PPPP/...``).

Example with the toy model of ``demo/toy_demo.sh``::

    python demo/image_demo.py data/toy_sysu/cam3/0004 data/toy_sysu/cam1 \\
        configs/clip_vireid_toy.py \\
        --weights $(cat work_dirs/toy_demo/last_checkpoint) \\
        --query-modality ir --gallery-modality vis --out-dir outputs/demo
"""
import argparse
import sys


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='Rank a gallery for query images with a VI-ReID model')
    parser.add_argument('query', nargs='+', help='query image(s) or folder(s)')
    parser.add_argument('gallery', help='gallery folder or image')
    parser.add_argument('model', help='config file or model-index name')
    parser.add_argument('--weights', help='checkpoint file')
    parser.add_argument(
        '--query-modality', choices=['vis', 'ir'], help='query modality')
    parser.add_argument(
        '--gallery-modality', choices=['vis', 'ir'], help='gallery modality')
    parser.add_argument('--topk', type=int, default=10)
    parser.add_argument(
        '--protocol',
        choices=['sysu', 'regdb', 'llcm'],
        help="apply the protocol's gallery filter (needs camC/PPPP paths)")
    parser.add_argument(
        '--rerank',
        action='store_true',
        help='order the matches by k-reciprocal re-ranking (k1=20, k2=6, '
        'lambda=0.3) over these queries and gallery')
    parser.add_argument('--out-dir', default='outputs/rankings')
    parser.add_argument(
        '--max-images', type=int, help='draw at most this many queries')
    parser.add_argument('--device', help='cpu, cuda, cuda:1 ...')
    parser.add_argument('--batch-size', type=int, default=32)
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    from mmvireid.apis import VIReIDInferencer
    try:
        inferencer = VIReIDInferencer(
            args.model,
            weights=args.weights,
            device=args.device,
            batch_size=args.batch_size)
        results = inferencer(
            args.query,
            args.gallery,
            topk=args.topk,
            protocol=args.protocol,
            query_modality=args.query_modality,
            gallery_modality=args.gallery_modality,
            out_dir=args.out_dir,
            max_images=args.max_images,
            rerank=args.rerank)
    except (FileNotFoundError, ValueError) as e:
        print(f'ERROR: {e}', file=sys.stderr)
        return 1
    for res in results[:5]:
        q = res['query']
        best = ', '.join(f'{m["img_path"] or m["index"]} ({m["score"]:.3f})'
                         for m in res['matches'][:3])
        print(f'{q["img_path"] or q["index"]}: {best}')
    if len(results) > 5:
        print(f'... {len(results) - 5} more queries')
    print(f'rankings.json and ranking images written to {args.out_dir}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
