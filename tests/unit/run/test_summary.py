"""A multirun's summary: labels show what differs between its jobs."""

from lmforge.run.summary import varying_overrides


def test_labels_show_what_differs_between_jobs():
    results = [{"overrides": ["a=1", "peft=lora", "b=2"]}, {"overrides": ["a=1", "peft=ia3", "b=3"]}]
    assert varying_overrides(results) == ["b=2 peft=lora", "b=3 peft=ia3"]
    assert varying_overrides([{"overrides": ["x=1"]}]) == ["x=1"]
