"""Kinds of experiment (nvpkit/experiments/config.py, guide.py, init_study.py): what each owns, the
runs root, and resuming every kind."""
import ast
from pathlib import Path


import nvpkit
from nvpkit._files import runs_root
from nvpkit.experiments import KINDS, NOTEBOOK_CONFIGS, ExperimentConfig, GuideConfig, InitConfig, Results
from nvpkit.experiments.cache import arm_key
from nvpkit.experiments.init_study import INIT_KEYS
from nvpkit.experiments.initialize import PullToInit, tucker_init

PACKAGE = Path(nvpkit.__file__).parent
KIND_MODULES = {"config.py", "guide.py", "init_study.py"}


def test_no_one_branches_on_the_kind_of_a_config():
    """Outside the kinds' own modules, no ``isinstance`` names a config type."""
    names = {cls.__name__ for cls in KINDS.values()}
    found = []
    for path in PACKAGE.rglob("*.py"):
        if path.parent.name == "experiments" and path.name in KIND_MODULES:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "isinstance":
                if names & {n.id for n in ast.walk(node.args[1]) if isinstance(n, ast.Name)}:
                    found.append(f"{path.relative_to(PACKAGE)}:{node.lineno}")
    assert not found


def test_every_kind_names_itself_and_its_notebooks():
    assert sorted(KINDS) == ["guide", "init", "train"]
    assert NOTEBOOK_CONFIGS == {"quickstart": ExperimentConfig, "codec_guide": GuideConfig,
                                "tucker_guide": GuideConfig, "tucker_init": InitConfig}
    for name in NOTEBOOK_CONFIGS:
        assert (PACKAGE.parent / "notebooks" / f"{name}.ipynb").is_file()


def test_runs_root_is_the_project_root_wherever_the_kernel_starts(tmp_path, monkeypatch):
    project = tmp_path / "project"
    (project / "notebooks").mkdir(parents=True)
    (project / "pyproject.toml").write_text("")
    monkeypatch.delenv("NVPKIT_RUNS", raising=False)
    monkeypatch.chdir(project / "notebooks")  # JupyterLab's kernel
    from_notebooks = GuideConfig(device="cpu")
    monkeypatch.chdir(project)  # papermill from the project root
    from_root = GuideConfig(device="cpu")
    assert from_notebooks.cache_dir == from_root.cache_dir == str(project / "runs" / "cache")
    assert from_root.out_dir == str(project / "runs" / "hevc_guide")
    assert InitConfig(device="cpu").out_dir == str(project / "runs" / "tucker_init")
    assert runs_root(tmp_path / "elsewhere") == tmp_path / "elsewhere" / "runs"  # outside a project
    monkeypatch.setenv("NVPKIT_RUNS", str(tmp_path / "shared"))
    assert ExperimentConfig(device="cpu").out_dir == str(tmp_path / "shared" / "train")
    assert GuideConfig(device="cpu", cache_dir="mine").cache_dir == "mine"  # given folders are kept


def test_the_train_kind_writes_results_that_load(tmp_path):
    cfg = ExperimentConfig(num_frames=4, downscale=8, steps=20, batch=1024, device="cpu", out_dir=str(tmp_path))
    results = nvpkit.run_experiment(cfg)
    loaded = Results.load(tmp_path / "results.json")
    assert loaded.kind == "train" and loaded.table == results.table
    assert loaded.final["model"]["psnr"] == nvpkit.evaluate(results.trainers["model"].model, cfg.load_video(),
                                                             progress=False).psnr
    assert (tmp_path / "reconstruction.mp4").exists() and (tmp_path / "checkpoint.pt").exists()


def test_an_interrupted_initialisation_study_resumes_exactly(tmp_path):
    """The pull-to-init arm, killed at step 10 of 20, resumes pulled to the same values and ends
    with the numbers of the uninterrupted run."""
    cfg = InitConfig(num_frames=4, downscale=8, steps=20, batch=512, device="cpu", log_every=5,
                     checkpoint_every=5, compare_mappings=False, out_dir=str(tmp_path))
    straight = nvpkit.run_experiment(cfg)
    video = cfg.load_video()
    name = cfg.arm_names()[2]
    assert name.endswith("+ pull")
    killed = cfg.new_trainer(video)  # what the run held at step 10 of this arm
    init = tucker_init(killed.model, video, tuple(cfg.ranks), mapping=cfg.mapping, scale=cfg.scale)
    killed.extra.update(key=f"{arm_key(cfg, video, INIT_KEYS)}:{name}", code=nvpkit.provenance.numeric_code(),
                        pull_init={"sparse": init["sparse"]})
    killed.regularizer = PullToInit({"sparse": init["sparse"]}, cfg.lam, ("sparse",), cfg.steps)
    killed.train(10, progress=False)
    killed.save(tmp_path / "arm-2.pt")
    (tmp_path / "results.json").unlink()
    resumed = nvpkit.run_experiment(cfg)
    assert resumed.table == [{**row, "train_seconds": again["train_seconds"]}
                             for row, again in zip(straight.table, resumed.table)]
    untimed = [{k: v for k, v in r.trainers[name].history.items() if k != "seconds"} for r in (resumed, straight)]
    assert untimed[0] == untimed[1] and untimed[0]["step"] == [5, 10, 15, 20]
