from glta_pipelines.pipeline_registry import STAGES, register_pipelines


def test_full_contains_every_stage_in_order():
    pipelines = register_pipelines()
    full_nodes = set(pipelines["full"].nodes)
    for stage in STAGES:
        assert set(pipelines[stage].nodes) <= full_nodes, stage
    assert set().union(*(set(pipelines[s].nodes) for s in STAGES)) == full_nodes
    assert pipelines["__default__"] is pipelines["full"]
    stages = list(STAGES)
    for i, stage in enumerate(stages):
        later_outputs = set().union(*(pipelines[s].all_outputs() for s in stages[i + 1 :]))
        assert not pipelines[stage].inputs() & later_outputs, f"{stage} consumes a later stage's output"


def test_every_stage_is_namespaced():
    for stage, pipe in register_pipelines().items():
        if stage in STAGES:
            assert {n.namespace for n in pipe.nodes} == {stage}


def test_sequential_adds_sasrec_to_full_and_full_stays_as_it_was():
    pipelines = register_pipelines()
    names = {n.name for n in pipelines["sequential"].nodes}
    assert {"baselines.train_sasrec", "evaluate.evaluate_sasrec", "evaluate.evaluate_glta"} <= names
    assert {n.name for n in pipelines["full"].nodes} == names - {"baselines.train_sasrec", "evaluate.evaluate_sasrec"}
    assert "baselines.sasrec_weights" in pipelines["sequential"].all_outputs()
