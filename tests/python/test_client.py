"""A backend team's Python client: grpcio with stubs generated from proto/, against the live mesh.

Run through tests/python/run.sh, which starts the mesh and generates the stubs.
"""

import io
import os
import sys

import grpc
import numpy as np
import pytest
from PIL import Image

sys.path.insert(0, os.environ["CLEARAIR_STUBS"])

from clearair.v1 import clearair_pb2, clearair_pb2_grpc, types_pb2  # noqa: E402

ENDPOINT = os.environ["CLEARAIR_ENDPOINT"]
PHOTO = os.environ["CLEARAIR_PHOTO"]
OPTIONS = [
    ("grpc.max_send_message_length", 64 << 20),
    ("grpc.max_receive_message_length", 64 << 20),
]


@pytest.fixture(scope="module")
def stub():
    with grpc.insecure_channel(ENDPOINT, options=OPTIONS) as channel:
        grpc.channel_ready_future(channel).result(timeout=30)
        yield clearair_pb2_grpc.ClearAirStub(channel)


def photo_bytes():
    with open(PHOTO, "rb") as f:
        return f.read()


def test_restore_returns_a_png_of_the_same_size_and_the_priors_summary(stub):
    data = photo_bytes()
    request = clearair_pb2.ClearAirRestoreRequest(image=types_pb2.EncodedImage(data=data))
    response = stub.Restore(request, timeout=120)

    assert response.image.media_type == "image/png"
    restored = Image.open(io.BytesIO(response.image.data))
    original = Image.open(io.BytesIO(data))
    assert restored.size == original.size
    assert (response.width, response.height) == original.size
    pixels = np.asarray(restored.convert("RGB"))
    assert pixels.shape == (original.size[1], original.size[0], 3)

    summary = response.priors
    assert 1.0 <= summary.quality_score <= 5.0
    assert summary.quality_level != types_pb2.QUALITY_LEVEL_UNSPECIFIED
    kinds = {p.kind for p in summary.degradations}
    assert kinds == {
        types_pb2.DEGRADATION_KIND_NOISE,
        types_pb2.DEGRADATION_KIND_HAZE,
        types_pb2.DEGRADATION_KIND_RAIN,
        types_pb2.DEGRADATION_KIND_BLUR,
        types_pb2.DEGRADATION_KIND_LOW_LIGHT,
    }
    assert all(0.0 <= p.probability <= 1.0 for p in summary.degradations)
    assert 1 <= summary.mask_count <= 16
    stages = [t.stage for t in response.timings]
    assert stages[-1] == "total" and "restoration" in stages
    assert list(response.fallbacks) == []


def test_analyze_returns_masks_that_unpack_with_numpy(stub):
    data = photo_bytes()
    request = clearair_pb2.AnalyzeRequest(
        image=types_pb2.EncodedImage(data=data), include_priors=True
    )
    response = stub.Analyze(request, timeout=120)
    masks = response.masks
    bits = np.unpackbits(np.frombuffer(masks.bits, dtype=np.uint8))
    planes = bits[: masks.count * masks.height * masks.width].reshape(
        masks.count, masks.height, masks.width
    )
    # The graph backend's masks partition the image: every pixel in exactly one mask.
    assert (planes.sum(axis=0) == 1).all()
    assert len(response.quality.features) == 36
    assert len(response.degradation.content) == 512


def test_bad_input_is_invalid_argument_with_a_reason(stub):
    request = clearair_pb2.ClearAirRestoreRequest(
        image=types_pb2.EncodedImage(data=b"GIF89a not really")
    )
    with pytest.raises(grpc.RpcError) as error:
        stub.Restore(request, timeout=30)
    assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "GIF" in error.value.details()


def test_a_client_deadline_is_reported_as_deadline_exceeded(stub):
    request = clearair_pb2.ClearAirRestoreRequest(image=types_pb2.EncodedImage(data=photo_bytes()))
    with pytest.raises(grpc.RpcError) as error:
        stub.Restore(request, timeout=0.001)
    assert error.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
