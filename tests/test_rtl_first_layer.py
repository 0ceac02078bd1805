# amaranth: UnusedElaboratable=no
"""FirstLayerSignature: one port set for both first-layer blocks, equal for equal parameters;
FirstLayerBlock takes nothing else. (The parameter messages are pinned, through both blocks,
in ``test_rtl_reference_mac.py`` and ``test_rtl_pim.py``.)"""

import pytest
from amaranth.lib import wiring
from amaranth.lib.wiring import In

from spikeforge.rtl.first_layer import FirstLayerBlock, FirstLayerSignature
from spikeforge.rtl.pim_first_layer import PIMFirstLayer
from spikeforge.rtl.reference_mac import ReferenceMAC

PARAMS = dict(lanes=4, input_bits=8, weight_bits=6, psum_bits=20, addr_bits=7,
              pixel_addr_bits=8, weight_addr_bits=8, coord_bits=4, channel_bits=5)


def test_both_blocks_have_one_signature():
    mac, pim = ReferenceMAC(**PARAMS), PIMFirstLayer(rows=5, columns=2, **PARAMS)
    assert mac.signature == pim.signature == FirstLayerSignature(**PARAMS)
    assert isinstance(mac, FirstLayerBlock) and isinstance(pim, FirstLayerBlock)
    assert mac.signature != FirstLayerSignature(**{**PARAMS, "lanes": 8})
    assert hash(mac.signature) == hash(pim.signature)


def test_signature_members_and_repr():
    signature = FirstLayerSignature(**PARAMS)
    assert set(signature.members.keys()) == {
        "geometry", "in_channels", "bias", "pixels", "weights", "bank", "start", "busy", "done"}
    assert signature.parameters == PARAMS
    assert repr(signature) == (
        "FirstLayerSignature(lanes=4, input_bits=8, weight_bits=6, psum_bits=20, addr_bits=7, "
        "pixel_addr_bits=8, weight_addr_bits=8, coord_bits=4, channel_bits=5)")


def test_signature_wrong_psum_bits():
    with pytest.raises(ValueError, match=r"^Partial-sum width must be at least the weight "
                                         r"width \(6\), not 5$"):
        FirstLayerSignature(**{**PARAMS, "psum_bits": 5})


def test_block_wrong_signature():
    with pytest.raises(TypeError, match=r"^Signature must be a FirstLayerSignature, not "
                                        r"Signature\(\{'start': In\(1\)\}\)$"):
        FirstLayerBlock(wiring.Signature({"start": In(1)}))
