"""Configuration lives in pyproject.toml; this file only works around a setuptools bug.

setuptools' editable installs skip ``data_files`` (pypa/setuptools#3399: ``editable_wheel`` asks the
distribution for ``has_data``, which does not exist; the method is ``has_data_files``). The ROS 2 package
files (ament index marker, package.xml, launch files, parameter files, node executables in lib/robot_bridge/)
are data files, and ``pip install -e .`` must install them as a regular wheel does.
"""

from setuptools import setup
from setuptools.command.editable_wheel import editable_wheel


class EditableWheelWithDataFiles(editable_wheel):
    def finalize_options(self) -> None:
        super().finalize_options()
        if not hasattr(self.distribution, "has_data"):
            self.distribution.has_data = self.distribution.has_data_files


setup(cmdclass={"editable_wheel": EditableWheelWithDataFiles})
