"""Package layout that pyproject.toml cannot express: the config tree at the top-level ``conf/`` ships as
the package data ``collapse/conf/`` (the package ``collapse.conf`` and its config groups mapped onto the
directory ``conf/``). Everything else (name, version, dependencies, scripts) is in pyproject.toml.
``collapse.paths`` finds the tree in either place."""
from setuptools import find_namespace_packages, setup

CONF = ["collapse.conf"] + [f"collapse.conf.{group}" for group in find_namespace_packages(where="conf")]

setup(
    packages=find_namespace_packages(include=["collapse", "collapse.*"], exclude=["*.__pycache__"]) + CONF,
    package_dir={"collapse.conf": "conf"},
    package_data={package: ["*.yaml"] for package in CONF},
)
