"""The student's first weights: a consistent slice of the teacher's (weight selection, `astapp.distill.init`)."""

from __future__ import annotations

import pytest
import torch
from transformers import ASTConfig, ASTForAudioClassification

from astapp.core.errors import TrainingError
from astapp.distill.init import evenly, head_indices, select_weights
from astapp.distill.sizes import student_config

PREFIX = "audio_spectrogram_transformer."


def _teacher(hidden: int = 128, layers: int = 3, heads: int = 2) -> ASTForAudioClassification:
    torch.manual_seed(0)
    config = ASTConfig(hidden_size=hidden, num_hidden_layers=layers, num_attention_heads=heads,
                       intermediate_size=4 * hidden, max_length=64, num_mel_bins=32, num_labels=5)
    return ASTForAudioClassification(config).eval()


def test_evenly_spread_indices_keep_both_ends_and_never_repeat():
    assert evenly(8, 4).tolist() == [0, 2, 5, 7]
    assert evenly(192, 128).size == 128 and evenly(192, 128)[[0, -1]].tolist() == [0, 191]
    assert evenly(5, 9).tolist() == [0, 1, 2, 3, 4]


def test_a_student_as_large_as_its_teacher_is_the_teacher():
    """Selection at the same size must copy every tensor to its place: the outputs are the teacher's."""
    teacher = _teacher()
    student = ASTForAudioClassification(teacher.config).eval()
    assert select_weights(student, teacher) == []
    x = torch.randn(2, 64, 32)
    torch.testing.assert_close(student(input_values=x).logits, teacher(input_values=x).logits)


def test_a_narrower_shallower_student_takes_whole_heads_the_first_layers_and_one_residual_subset():
    teacher = _teacher(hidden=192, layers=4, heads=3)
    student = ASTForAudioClassification(student_config(teacher.config, "128x2")).eval()
    assert student.config.num_attention_heads == 2
    assert select_weights(student, teacher) == []
    t, s = teacher.state_dict(), student.state_dict()
    hidden = torch.as_tensor(evenly(192, 128))
    heads = torch.as_tensor(head_indices(teacher.config, student.config))
    assert heads.tolist() == list(range(0, 64)) + list(range(128, 192))  # heads 0 and 2, whole
    q = f"{PREFIX}layers.1.attention.q_proj.weight"
    torch.testing.assert_close(s[q], t[q][heads][:, hidden])
    o = f"{PREFIX}layers.0.attention.o_proj.weight"
    torch.testing.assert_close(s[o], t[o][hidden][:, heads])
    fc2 = f"{PREFIX}layers.1.mlp.fc2.weight"
    torch.testing.assert_close(s[fc2], t[fc2][hidden][:, torch.as_tensor(evenly(768, 512))])
    pos = f"{PREFIX}embeddings.position_embeddings"
    torch.testing.assert_close(s[pos], t[pos][..., hidden])
    torch.testing.assert_close(s["classifier.dense.weight"], t["classifier.dense.weight"][:, hidden])
    torch.testing.assert_close(s["classifier.dense.bias"], t["classifier.dense.bias"])


def test_a_student_deeper_than_its_teacher_keeps_random_weights_only_in_the_extra_layers():
    teacher = _teacher(hidden=128, layers=2, heads=2)
    student = ASTForAudioClassification(student_config(teacher.config, "64x3")).eval()
    kept = select_weights(student, teacher)
    assert kept and all(".layers.2." in name for name in kept)
    assert len(kept) == len([n for n in student.state_dict() if ".layers.2." in n])


def test_a_slice_of_the_teacher_answers_more_like_it_than_a_random_student():
    """With one layer of a two-layer teacher kept whole, the student's answers follow the teacher's."""
    teacher = _teacher(hidden=64, layers=2, heads=2)
    with torch.no_grad():  # a teacher whose second layer changes little, as trained residual nets tend to
        for p in teacher.audio_spectrogram_transformer.layers[1].parameters():
            p.mul_(0.05)
        teacher.classifier.dense.weight.mul_(20)
    x = torch.randn(16, 64, 32)
    sliced = ASTForAudioClassification(student_config(teacher.config, "64x1")).eval()
    select_weights(sliced, teacher)
    random = ASTForAudioClassification(student_config(teacher.config, "64x1")).eval()
    with torch.no_grad():
        want = teacher(input_values=x).logits.argmax(-1)
        agree = (sliced(input_values=x).logits.argmax(-1) == want).float().mean()
        chance = (random(input_values=x).logits.argmax(-1) == want).float().mean()
    assert agree >= 0.9 and agree > chance


def test_an_unknown_student_start_is_refused_in_one_sentence(tmp_path):
    from astapp.distill.run import distill_config

    with pytest.raises(TrainingError, match="Unknown student start 'copy': use teacher"):
        distill_config(tmp_path, "tiny", tmp_path / "s", init="copy")
