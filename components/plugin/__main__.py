"""Entry point the Pulumi Python language host runs for this plugin (`python <plugin dir>`).

Run as a script, this directory is sys.path[0]: imports are absolute, through the installed
coco-stack package (requirements.txt installs the checkout this directory belongs to).
components.plugin.serve says why this is not a bare `component_provider_host` call.
"""

from importlib import metadata

from components.plugin.serve import serve

if __name__ == "__main__":
    serve(metadata.version("coco-stack"))
