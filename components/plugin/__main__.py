"""Entry point the Pulumi Python language host runs for this plugin (`python <plugin dir>`).

Run as a script, this directory is sys.path[0]: imports are absolute, through the installed
coco-stack package (requirements.txt installs the checkout this directory belongs to).
"""

from importlib import metadata

from pulumi.provider.experimental import component_provider_host

from components.plugin import COMPONENTS, PACKAGE

if __name__ == "__main__":
    component_provider_host(COMPONENTS, name=PACKAGE, version=metadata.version("coco-stack"))
