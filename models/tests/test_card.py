"""The model card's recipe lines, from a run's recorded recipe, and its notes refreshed in place."""
import pytest

from autorma_models.card import _tags, refresh_notes, reproduce_command


def test_reproduce_command_spells_out_every_option_that_changes_the_model():
    r = {"epochs": 40, "seed": 0, "lr": 0.05, "aspect_jitter": 1.33, "lowres_prob": 0.3,
         "init": "/x/runs/a", "teacher": ["/x/runs/a", "/y/b"], "distill_weight": 0.7}
    cmd = reproduce_command("resnet_s", 128, r)
    for part in ("--arch resnet_s", "--size 128", "--epochs 40", "--lr 0.05", "--aspect-jitter 1.33",
                 "--lowres-prob 0.3", "--init runs/a", "--teacher runs/a --teacher runs/b", "--distill-weight 0.7"):
        assert part in cmd
    assert _tags(r) == "aspect 1.33, lowres 0.3, init, kd2"


def test_a_run_from_before_the_new_options_reproduces_with_them_off():
    cmd = reproduce_command("resnet_s", 128, {"epochs": 200, "seed": 1, "lr": 0.2})
    assert "--aspect-jitter 1.0 --lowres-prob 0.0" in cmd
    assert "--teacher" not in cmd and "--init" not in cmd and "--lr" not in cmd
    assert _tags({"epochs": 200}) == "-"


CARD = "# Model card\n\n| val | 98 % |\n\n## What was tried\n\nround 1\n\n## Intended use and known limits\n\n- five classes\n"


def test_refreshed_notes_replace_the_old_ones_and_keep_the_figures():
    out = refresh_notes(CARD, "## What was tried\n\nround 2\n\nround 1\n")
    assert out == CARD.replace("round 1\n", "round 2\n\nround 1\n")


def test_notes_under_another_heading_are_refused():
    with pytest.raises(ValueError, match="no notes under the heading"):
        refresh_notes(CARD, "## Findings\n\nround 2\n")
