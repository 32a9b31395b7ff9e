"""The model card's recipe lines, from a run's recorded recipe."""
from autorma_models.card import _tags, reproduce_command


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
