"""The app's onnxruntime sessions: the thread count asked for, and no busy-waiting between calls."""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper

from astapp.predict.onnx_backend import ort_session


def _identity(path):
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, 4])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [None, 4])
    graph = helper.make_graph([helper.make_node("Identity", ["x"], ["y"])], "identity", [x], [y])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(path))
    return path


def test_sessions_use_the_threads_given_and_do_not_spin_between_calls(tmp_path):
    session = ort_session(_identity(tmp_path / "m.onnx"), threads=2)
    opts = session.get_session_options()
    assert opts.intra_op_num_threads == 2
    assert opts.get_session_config_entry("session.intra_op.allow_spinning") == "0"
    x = np.arange(8, dtype=np.float32).reshape(2, 4)
    np.testing.assert_array_equal(session.run(None, {"x": x})[0], x)
