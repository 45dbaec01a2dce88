"""Config: errors name the key path and value; --set overrides; extends; the seed is always resolved."""

import glob

import pytest

from dgm.config import ConfigError, load_config


def _write(tmp_path, text, name="c.yaml"):
    path = tmp_path / name
    path.write_text(text)
    return path


def test_bad_values_name_the_key_path_and_value(tmp_path):
    path = _write(tmp_path, "loop:\n  children_per_generation: 0\nselection:\n  method: fittest\n")
    with pytest.raises(ConfigError) as err:
        load_config(path)
    text = str(err.value)
    assert "loop.children_per_generation" in text and "got 0" in text
    assert "selection.method" in text and "fittest" in text


def test_unknown_keys_are_rejected(tmp_path):
    with pytest.raises(ConfigError, match="loop.generatoins"):
        load_config(_write(tmp_path, "loop:\n  generatoins: 3\n"))


def test_openai_route_needs_endpoint_and_model(tmp_path):  # no key name: a local server takes none
    with pytest.raises(ConfigError, match="llm.task.*base_url, model"):
        load_config(_write(tmp_path, "llm:\n  task: {provider: openai}\n"))


def test_yaml_syntax_error_names_the_file(tmp_path):
    path = _write(tmp_path, "loop: [unclosed\n")
    with pytest.raises(ConfigError, match="c.yaml is not valid YAML"):
        load_config(path)


def test_set_overrides_are_typed_and_validated(tmp_path):
    path = _write(tmp_path, "loop:\n  generations: 3\n")
    config = load_config(path, ["loop.generations=7", "selection.method=random", "run.seed=42"])
    assert (config.loop.generations, config.selection.method, config.run.seed) == (7, "random", 42)
    with pytest.raises(ConfigError, match="loop.generations"):
        load_config(path, ["loop.generations=-1"])
    with pytest.raises(ConfigError, match="KEY.PATH=VALUE"):
        load_config(path, ["loop.generations"])


def test_missing_seed_is_drawn_and_saved_in_the_resolved_config(tmp_path):
    config = load_config(_write(tmp_path, "{}\n"))
    assert isinstance(config.run.seed, int)
    again = load_config(_write(tmp_path, config.to_yaml(), "resolved.yaml"))
    assert again == config


def test_extends_merges_sections(tmp_path):
    _write(tmp_path, "loop: {generations: 3, children_per_generation: 2}\nrun: {seed: 1}\n", "base.yaml")
    child = load_config(_write(tmp_path, "extends: base.yaml\nloop: {generations: 9}\n"))
    assert (child.loop.generations, child.loop.children_per_generation, child.run.seed) == (9, 2, 1)


@pytest.mark.parametrize("path", sorted(glob.glob("experiments/*.yaml")))
def test_shipped_experiments_are_valid(path):
    config = load_config(path)
    if "no_darwin" in path:
        assert config.selection_method == "latest"
    if "greedy" in path:
        assert config.selection_method == "best"
    if path.startswith("experiments/swebench") or path.startswith("experiments/polyglot"):
        assert config.loop.max_children == 80
        assert config.loop.children_per_generation == (2 if "swebench" in path else 4)


def test_bad_benchmark_settings_fail_before_a_run_directory_exists(tmp_path, capsys):
    from dgm.run import execute

    archive = tmp_path / "archive"
    for bad, named in (("evaluation.stages=[{tasks: huge}]", "huge"),
                       ("evaluation.stages=[{tasks: [no-such-task]}]", "no-such-task"),
                       ("evaluation.benchmark=nonexistent", "nonexistent"),
                       ("evaluation.benchmark_options={colour: red}", "colour")):
        assert execute("experiments/quickstart.yaml", [f"run.archive_dir={archive}", bad], None) == 2
        assert named in capsys.readouterr().out
    assert not archive.exists() or not any(archive.iterdir())
