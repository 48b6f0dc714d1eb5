# Copyright (c) mmvireid contributors. All rights reserved.
"""Modality names, ids and directions."""
import pytest

from mmvireid.structures import (DIRECTIONS, IR, IR2VIS, IR_ID, MODALITIES,
                                 MODALITY_IDS, MODALITY_LABELS, OTHER_MODALITY,
                                 VIS, VIS2IR, VIS_ID, check_modality,
                                 direction_modalities, modality_id)


def test_names_and_ids_are_the_datasets_and_tensors_values():
    # Datasets store these strings and configs spell them; tensors carry
    # these ids (the data preprocessor splits batches by them).
    assert (VIS, IR) == MODALITIES == ('vis', 'ir')
    assert (VIS_ID, IR_ID) == (0, 1)
    assert MODALITY_IDS == {'vis': 0, 'ir': 1}
    assert [modality_id(m) for m in MODALITIES] == [0, 1]
    assert OTHER_MODALITY == {'vis': 'ir', 'ir': 'vis'}
    assert set(MODALITY_LABELS) == set(MODALITIES)


def test_directions():
    assert (IR2VIS, VIS2IR) == ('ir2vis', 'vis2ir')
    assert direction_modalities(IR2VIS) == (IR, VIS)
    assert direction_modalities(VIS2IR) == (VIS, IR)
    assert set(DIRECTIONS) == {IR2VIS, VIS2IR}
    with pytest.raises(
            ValueError,
            match=r"direction must be one of "
            r"\['ir2vis', 'vis2ir'\], got 'rgb2ir'"):
        direction_modalities('rgb2ir')


def test_check_modality_names_the_value():
    assert check_modality('ir') == 'ir'
    with pytest.raises(
            ValueError,
            match=r"query_modality must be one of "
            r"\['vis', 'ir'\], got 'nir'"):
        check_modality('nir', 'query_modality')
    with pytest.raises(ValueError, match="got 'thermal'"):
        modality_id('thermal')
