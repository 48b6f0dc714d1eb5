# Copyright (c) mmvireid contributors. All rights reserved.
"""The query and gallery of every test trial, from one list of test samples.

The test loader yields every test image of both modalities once; the
protocol then decides, per direction and trial, which of them are queries
and which the gallery. :class:`ProtocolSplit` is that decision, shared by
:class:`~mmvireid.evaluation.VIReIDMetric` (the scores) and
:class:`~mmvireid.visualization.RankingVisualizationHook` (the ranking
images of the same trial).
"""
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from .gallery_sampling import (draw_multi_shot, draw_single_shot,
                               group_consecutive)
from .modality import IR, IR2VIS, MODALITIES, VIS, VIS2IR, direction_modalities
from .protocol import LLCM, MULTI_SHOT_NUM, REGDB, check_protocol_options

__all__ = ['ProtocolSplit', 'protocol_split']


class ProtocolSplit:
    """Query and gallery positions of each direction and trial.

    The samples must be in dataset order (``sample_idx``) within each
    modality, which is the reference's listing order: ids ascending,
    cameras inner, files sorted by name. Consecutive samples of one
    ``(pid, camera)`` are one ``(id, camera)`` folder visit (see
    :func:`~mmvireid.structures.gallery_sampling.group_consecutive`).

    * ``'sysu'``: all infrared images are queries; the gallery of trial
      ``t`` is one visible image per folder visit (``gallery_mode=
      'single'``) or :data:`MULTI_SHOT_NUM` (``'multi'``), drawn with seed
      ``t``.
    * ``'llcm'``: the same in both directions; for ``'vis2ir'`` with
      ``llcm_vis2ir_mode='deen'`` the *queries* are drawn (one infrared
      image per folder visit) and every visible image is the gallery, as
      DEEN's test computes.
    * ``'regdb'``: every image of one modality against every image of the
      other; there is one trial.

    Args:
        protocol (str): ``'sysu'``, ``'regdb'`` or ``'llcm'``.
        pids (np.ndarray): ``(N,)`` person ids.
        cams (np.ndarray): ``(N,)`` camera numbers.
        modalities (np.ndarray): ``(N,)`` ``'vis'`` / ``'ir'``.
        img_paths (Sequence[str | None], optional): ``(N,)`` image paths;
            when all are known they separate back-to-back visits of one
            folder (a duplicated test id). Defaults to None.
        gallery_mode (str): ``'single'`` or ``'multi'`` (SYSU only).
        llcm_vis2ir_mode (str): ``'symmetric'`` or ``'deen'``.
    """

    def __init__(self,
                 protocol: str,
                 pids: np.ndarray,
                 cams: np.ndarray,
                 modalities: np.ndarray,
                 img_paths: Optional[Sequence[Optional[str]]] = None,
                 gallery_mode: str = 'single',
                 llcm_vis2ir_mode: str = 'symmetric') -> None:
        self.directions = check_protocol_options(
            protocol,
            gallery_mode=gallery_mode,
            llcm_vis2ir_mode=llcm_vis2ir_mode)
        self.protocol = protocol
        self.gallery_mode = gallery_mode
        self.llcm_vis2ir_mode = llcm_vis2ir_mode
        self.pids = np.asarray(pids)
        self.cams = np.asarray(cams)
        modalities = np.asarray(modalities)
        self.img_paths = img_paths
        self._positions = {
            m: np.flatnonzero(modalities == m)
            for m in MODALITIES
        }
        self._visits: Dict[str, List[List[int]]] = {}

    def positions(self, modality: str) -> np.ndarray:
        """``(n,)`` positions of one modality's samples, in order."""
        return self._positions[modality]

    def __call__(self,
                 direction: str,
                 trial: int = 0) -> Tuple[np.ndarray, np.ndarray]:
        """Query and gallery of one direction and trial.

        Args:
            direction (str): ``'ir2vis'`` or ``'vis2ir'``, one the protocol
                defines.
            trial (int): The gallery draw. Defaults to 0.

        Returns:
            tuple[np.ndarray, np.ndarray]: Query and gallery positions into
            the N samples; each in sample order, except multi-shot
            galleries (draw order within a folder visit).
        """
        check_protocol_options(self.protocol, directions=(direction, ))
        q_mod, g_mod = direction_modalities(direction)
        q_all, g_all = self.positions(q_mod), self.positions(g_mod)
        if q_all.size == 0 or g_all.size == 0:
            raise ValueError(
                f'{direction}: the test set has {q_all.size} {q_mod!r} and '
                f'{g_all.size} {g_mod!r} samples; both are needed.')
        if self.protocol == REGDB:
            return q_all, g_all
        if (self.protocol == LLCM and direction == VIS2IR
                and self.llcm_vis2ir_mode == 'deen'):
            # DEEN's test_mode [2, 1]: drawn infrared rows against every
            # visible image.
            return self._draw(IR, trial), self.positions(VIS)
        return q_all, self._draw(g_mod, trial)

    def _draw(self, modality: str, trial: int) -> np.ndarray:
        """Positions of one trial's draw from a modality's folder visits."""
        visits = self._folder_visits(modality)
        if self.gallery_mode == 'multi':
            try:
                picks = draw_multi_shot(visits, trial, MULTI_SHOT_NUM)
            except ValueError as e:
                raise ValueError('multi-shot gallery draw failed for the '
                                 f'{modality!r} candidates: {e}') from e
        else:
            picks = draw_single_shot(visits, trial)
        return self.positions(modality)[np.asarray(picks, dtype=np.int64)]

    def _folder_visits(self, modality: str) -> List[List[int]]:
        """Runs of one ``(pid, cam)`` folder visit, as positions into the
        modality's samples (computed once, drawn from every trial)."""
        if modality not in self._visits:
            pos = self.positions(modality)
            keys = list(zip(self.pids[pos].tolist(), self.cams[pos].tolist()))
            paths = None if self.img_paths is None else [
                self.img_paths[i] for i in pos
            ]
            if paths is not None and any(p is None for p in paths):
                paths = None  # keys alone then delimit the visits
            self._visits[modality] = group_consecutive(keys, paths)
        return self._visits[modality]


def protocol_split(pids: np.ndarray,
                   cams: np.ndarray,
                   modalities: np.ndarray,
                   paths: Optional[Sequence[Optional[str]]],
                   protocol: str,
                   direction: str = IR2VIS,
                   trial: int = 0,
                   gallery_mode: str = 'single',
                   llcm_vis2ir_mode: str = 'symmetric'
                   ) -> Tuple[np.ndarray, np.ndarray]:
    """Query and gallery positions of one trial (see :class:`ProtocolSplit`,
    which also keeps the folder visits for further trials).

    Args:
        pids, cams (np.ndarray): ``(N,)`` person ids and camera numbers.
        modalities (np.ndarray): ``(N,)`` ``'vis'`` / ``'ir'``.
        paths (Sequence[str | None], optional): ``(N,)`` image paths.
        protocol (str): ``'sysu'``, ``'regdb'`` or ``'llcm'``.
        direction (str): ``'ir2vis'`` or ``'vis2ir'``. Defaults to
            ``'ir2vis'``.
        trial (int): Gallery draw. Defaults to 0.
        gallery_mode (str): ``'single'`` or ``'multi'``.
        llcm_vis2ir_mode (str): ``'symmetric'`` or ``'deen'``.

    Returns:
        tuple[np.ndarray, np.ndarray]: Query and gallery positions into the
        N samples.
    """
    split = ProtocolSplit(protocol, pids, cams, modalities, paths,
                          gallery_mode, llcm_vis2ir_mode)
    return split(direction, trial)
