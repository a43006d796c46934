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
    # head asset_id -> the manifest's unit_scale, up_axis, forward_axis (assets_manifest.axes), when recorded
    placements: dict[str, dict[str, Any]] = field(default_factory=dict)

    @classmethod
    def from_catalogs(cls, catalogs: list[str]) -> "AssetPaths":
        paths: dict[str, str] = {}
        placements: dict[str, dict[str, Any]] = {}
        for manifest in catalogs:
            for row in read_rows(manifest):
                # an id is its content: any catalog that lists it has the same bytes
                paths.setdefault(row["asset_id"], resolve_uri(row["uri"], manifest))
                head = row.get("head") or {}
                if head.get("unit_scale") is not None:
                    placements.setdefault(row["asset_id"], {k: head.get(k) for k in PLACEMENT})
        return cls(catalogs=tuple(catalogs), paths=paths, placements=placements)

    def path(self, asset_id: str) -> str:
        try:
            return self.paths[asset_id]
        except KeyError:
            raise AssetNotFound(f"{asset_id}: planned, but none of the job's catalogs lists it "
                                f"({', '.join(self.catalogs)}); render with the catalogs the plan was "
                                "made from") from None

    def locate(self, row: dict[str, Any]) -> dict[str, Any]:
        """A plan row plus where its files are (``head_path``, each lighting's ``hdri_path``), for the renderer,
        and the head's units and axes (``head_unit_scale``, ``head_up_axis``, ``head_forward_axis``; None
        for a manifest that does not record them: the renderer then uses the file's own convention).

        Only the renderer sees these; samples are built from the plan row itself.
        """
        place = self.placements.get(row["head_asset_id"], {})
        return dict(row, head_path=self.path(row["head_asset_id"]),
                    **{f"head_{k}": place.get(k) for k in PLACEMENT},
                    lightings=[dict(lt, hdri_path=self.path(lt["hdri_asset_id"])) for lt in row["lightings"]])
