# Copyright (c) mmvireid contributors. All rights reserved.
"""VIReIDInferencer's folder inputs skip hidden files (issue 16, item 3)."""
import os.path as osp

from mmvireid.apis import VIReIDInferencer


def test_folder_inputs_skip_hidden_files(tmp_path):
    (tmp_path / 'sub').mkdir()
    (tmp_path / '.thumbs').mkdir()
    for rel in ('a.jpg', 'sub/b.png', '._a.jpg', 'sub/.c.jpg', '.thumbs/d.jpg',
                '.DS_Store'):
        (tmp_path / rel).write_bytes(b'')
    found = VIReIDInferencer._expand(str(tmp_path))
    assert found == [
        osp.join(str(tmp_path), 'a.jpg'),
        osp.join(str(tmp_path), 'sub', 'b.png')
    ]
