"""PEFT knows the masked map as soon as hf_linear is imported, without hf_linear importing peft.

`hf_linear.lora` teaches PEFT's LoRA the masked position-mixing map (`target_modules=["mixing"]`)
when it is imported; without it PEFT answers "Target module ... is not supported", and its
message cannot say why. Importing peft costs about a second and most hf-linear programs never
use it, so `import hf_linear` does not import it: it waits for the program to import peft
and imports `hf_linear.lora` right after peft's own `__init__` has run. If peft is already
imported, `hf_linear.lora` is imported at once; if peft is not installed nothing happens.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.util
import sys
import warnings

PEFT = "peft"


def register_lora_support() -> None:
    """Make PEFT's LoRA accept the masked map now (peft already imported) or when peft is imported."""
    if PEFT in sys.modules:
        importlib.import_module("hf_linear.lora")
    elif not any(isinstance(finder, _AfterPeftImport) for finder in sys.meta_path):
        sys.meta_path.insert(0, _AfterPeftImport())


class _AfterPeftImport(importlib.abc.MetaPathFinder):
    """Finds peft with the other finders and hands it a loader that imports `hf_linear.lora`
    after peft's module code. It stays in sys.meta_path: transformers probes for peft with
    `importlib.util.find_spec`, which must not use it up before the real import."""

    searching = False  # while asking the other finders (they call back into this one)

    def find_spec(self, name, path=None, target=None):
        if name != PEFT or self.searching:
            return None
        self.searching = True
        try:
            spec = importlib.util.find_spec(PEFT)
        finally:
            self.searching = False
        if spec is not None and spec.loader is not None:
            spec.loader = _ThenImportLora(spec.loader)
        return spec


class _ThenImportLora(importlib.abc.Loader):
    """peft's own loader, followed by the import of hf_linear.lora (which imports from peft, so
    it must wait until peft's `__init__` has finished)."""

    def __init__(self, loader):
        self.loader = loader

    def create_module(self, spec):
        return self.loader.create_module(spec)

    def exec_module(self, module):
        self.loader.exec_module(module)
        try:
            importlib.import_module("hf_linear.lora")
        except Exception as error:  # a PEFT hf_linear.lora cannot work with must still import
            warnings.warn(f"hf_linear: LoRA of the masked map is not available with this peft ({error})", stacklevel=2)

    def __getattr__(self, name):  # get_resource_reader, is_package, ... of the real loader
        return getattr(self.loader, name)
