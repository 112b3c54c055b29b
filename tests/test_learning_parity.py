"""benchmarks/learning_parity.py: its bookkeeping, and its PyTorch twin when torch is present."""

import ast
import importlib.util

import pytest

from conftest import ROOT

SCRIPT = ROOT / "benchmarks" / "learning_parity.py"


def load_script():
  spec = importlib.util.spec_from_file_location("learning_parity", SCRIPT)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module


def test_imports_torch_only_when_run():
  # torch is optional: only import_torch() may import it, never the module itself.
  tree = ast.parse(SCRIPT.read_text())
  owners = {}
  for function in ast.walk(tree):
    if isinstance(function, ast.FunctionDef):
      for node in ast.walk(function):
        owners[node] = function.name
  torch_imports = [node for node in ast.walk(tree)
                   if isinstance(node, ast.Import) and any(a.name == "torch" for a in node.names)
                   or isinstance(node, ast.ImportFrom) and (node.module or "").startswith("torch")]
  assert torch_imports
  assert {owners.get(node) for node in torch_imports} == {"import_torch"}


def test_refuses_configs_without_a_twin():
  with pytest.raises(SystemExit, match="supported: experiments/dcgan/mnist.py"):
    load_script().load_config("experiments/wgan/mnist.py:quick", 0, None, None)


def test_checkpoints_keep_every_scored_step():
  parity = load_script()
  assert parity.checkpoint_plan(2000, [500, 1000, 2000]) == (500, 4)
  assert parity.checkpoint_plan(40, [20, 40]) == (20, 2)
  assert parity.checkpoint_plan(2000, [300, 2000]) == (100, 20)


def test_medians_and_verdict():
  parity = load_script()
  rows = [{"framework": f, "network": n, "seed": s, "step": 10, "fid": fid, "confident": 0.5,
           "min_class": 0.1, "max_class": 0.1}
          for f, n, fids in (("gen_jax", "ema", (3, 1, 2)), ("gen_jax", "raw", (9, 5, 7)),
                             ("torch", "raw", (4, 6, 5)))
          for s, fid in enumerate(fids)]
  summary = parity.medians(rows)
  assert {(s["framework"], s["network"]): s["fid"] for s in summary} == {
      ("gen_jax", "ema"): 2, ("gen_jax", "raw"): 7, ("torch", "raw"): 5}
  line = parity.verdict(summary, 10, ema_kept=True)
  assert "EMA FID median 2.00 vs torch RAW 5.00: at least as good" in line
  assert "RAW FID median 7.00 vs torch RAW 5.00: worse" in line
  assert "needs both" in parity.verdict(summary[:1], 10, ema_kept=True)


def test_twin_computes_gen_jax_networks_and_step(shared_datasets, capsys):
  pytest.importorskip("torch")
  parity = load_script()
  code = parity.main(["--check", "--config", "experiments/dcgan/mnist.py:quick",
                      f"--dataset=npz:{shared_datasets / 'mnist.npz'}", "--seeds=0"])
  out = capsys.readouterr().out
  assert code == 0, out
  assert "check: all ok" in out
