"""Drive the Intrinsic properties panel through ``foo.execute_operator`` as the App does,
and read back what one event produced (shared by the panel tests)."""

import copy

import fiftyone.operators as foo

PANEL = "@fiftyone-intrinsic/intrinsic/intrinsic_properties"
QUIET = dict(device="cpu", progress=lambda f, s: None)


class PanelRun:
    """The requests one panel event produced: state and data patches, rendered layout."""

    def __init__(self, dataset, method, state=None, params=None):
        state = copy.deepcopy(state or {})  # the panel updates the state it is given in place
        result = foo.execute_operator(
            PANEL, ctx=dict(dataset=dataset),
            params={"panel_id": "test", "__method__": method, "panel_state": state or {}, **(params or {})},
        )
        self.requests = result.executor._requests
        self.state, self.data, self.output, self.triggers = copy.deepcopy(state), {}, None, []
        for request in self.requests:
            if request.operator_uri == "patch_panel_state":
                self.state.update(request.params["state"])
            elif request.operator_uri == "patch_panel_data":
                self.data.update(request.params["data"])
            elif request.operator_uri == "show_panel_output":
                self.output = request.params["output"]
            else:
                self.triggers.append(request)

    def properties(self, node=None):
        """Every (name, property) of the rendered layout, nested objects included."""
        node = node or self.output
        for name, prop in node["type"].get("properties", {}).items():
            yield name, prop
            if prop["type"].get("name") == "Object":
                yield from self.properties(prop)

    def _views(self, kind):
        return {name: p for name, p in self.properties() if (p.get("view") or {}).get("name") == kind}

    def markdown(self):
        return "\n".join(p["default"] for p in self._views("MarkdownView").values())

    def buttons(self):
        return {name: p["view"] for name, p in self._views("Button").items()}

    def plots(self):
        return {name: p["view"] for name, p in self._views("PlotlyView").items()}
