"""Where a plan's assets are on this node: asset id -> file, from the job's catalogs, at render time.

Plans and samples name assets by ``asset_id`` (a hash of their content) and
the catalog's ``name``, never by path, so the same job writes the same bytes
wherever its catalogs live, and a moved catalog resumes the same plan. The
node that renders looks the files up here, in the manifests the job names.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from assets_manifest.schema import read_rows, resolve_uri


PLACEMENT = ("unit_scale", "up_axis", "forward_axis")  # located rows carry them as head_<name>


class AssetNotFound(FileNotFoundError):
    """A planned asset that none of the job's catalogs lists; fails its group."""


@dataclass(frozen=True)
class AssetPaths:
    catalogs: tuple[str, ...]
    paths: dict[str, str]  # asset_id -> local path or URL
    # head asset_id -> what the renderer needs beside the file (material roles, textures, appearance)
    heads: dict[str, dict[str, Any]] = field(default_factory=dict)
    # head asset_id -> the manifest's unit_scale, up_axis, forward_axis (assets_manifest.axes), when recorded
    placements: dict[str, dict[str, Any]] = field(default_factory=dict)

    @classmethod
    def from_catalogs(cls, catalogs: list[str]) -> "AssetPaths":
        paths: dict[str, str] = {}
        heads: dict[str, dict[str, Any]] = {}
        placements: dict[str, dict[str, Any]] = {}
        for manifest in catalogs:
            for row in read_rows(manifest):
                # an id is its content: any catalog that lists it has the same bytes
                paths.setdefault(row["asset_id"], resolve_uri(row["uri"], manifest))
                if row["kind"] == "head" and row.get("head") and row["asset_id"] not in heads:
                    heads[row["asset_id"]] = _head_info(row["head"], manifest)
                head = row.get("head") or {}
                if head.get("unit_scale") is not None:
                    placements.setdefault(row["asset_id"], {k: head.get(k) for k in PLACEMENT})
        return cls(catalogs=tuple(catalogs), paths=paths, heads=heads, placements=placements)

    def path(self, asset_id: str) -> str:
        try:
            return self.paths[asset_id]
        except KeyError:
            raise AssetNotFound(f"{asset_id}: planned, but none of the job's catalogs lists it "
                                f"({', '.join(self.catalogs)}); render with the catalogs the plan was "
                                "made from") from None

    def head_import_options(self, asset_id: str) -> dict[str, Any]:
        """Keyword arguments of ``synthgen.render.scene.import_asset`` for one head, from its manifest row."""
        head, place = self.heads.get(asset_id, {}), self.placements.get(asset_id)
        return {"material_roles": head.get("material_roles"), "textures": head.get("textures", []),
                "generator_params": head.get("generator_params"), "placement": place}

    def locate(self, row: dict[str, Any]) -> dict[str, Any]:
        """A plan row plus where its files are (``head_path``, each lighting's ``hdri_path``), for the renderer,
        and the head's units and axes (``head_unit_scale``, ``head_up_axis``, ``head_forward_axis``; None
        for a manifest that does not record them: the renderer then uses the file's own convention).

        It also carries the head's manifest fields the renderer's materials use: ``material_roles``
        (list of ``{"material", "role"}``, None when the manifest has none), ``head_textures`` (role,
        path) and ``head_generator_params`` (JSON, for an ``appearance`` object). Only the renderer
        sees these; samples are built from the plan row itself.
        """
        head = self.heads.get(row["head_asset_id"], {})
        place = self.placements.get(row["head_asset_id"], {})
        return dict(row, head_path=self.path(row["head_asset_id"]),
                    material_roles=head.get("material_roles"), head_textures=head.get("textures", []),
                    head_generator_params=head.get("generator_params"),
                    **{f"head_{k}": place.get(k) for k in PLACEMENT},
                    lightings=[dict(lt, hdri_path=self.path(lt["hdri_asset_id"])) for lt in row["lightings"]])


def _head_info(head: dict[str, Any], manifest: str) -> dict[str, Any]:
    roles = head.get("material_roles")
    return {
        "material_roles": [dict(r) for r in roles] if roles is not None else None,
        "textures": [{"role": t["role"], "path": t["uri"] if t["uri"].startswith("embedded:")
                      else resolve_uri(t["uri"], manifest)} for t in head.get("textures") or []],
        "generator_params": head.get("generator_params"),
    }
