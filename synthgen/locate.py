"""Where a plan's assets are on this node: asset id -> file, from the job's catalogs, at render time.

Plans and samples name assets by ``asset_id`` (a hash of their content) and
the catalog's ``name``, never by path, so the same job writes the same bytes
wherever its catalogs live, and a moved catalog resumes the same plan. The
node that renders looks the files up here, in the manifests the job names.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from assets_manifest.schema import read_rows, resolve_uri


class AssetNotFound(FileNotFoundError):
    """A planned asset that none of the job's catalogs lists; fails its group."""


@dataclass(frozen=True)
class AssetPaths:
    catalogs: tuple[str, ...]
    paths: dict[str, str]  # asset_id -> local path or URL

    @classmethod
    def from_catalogs(cls, catalogs: list[str]) -> "AssetPaths":
        paths: dict[str, str] = {}
        for manifest in catalogs:
            for row in read_rows(manifest):
                # an id is its content: any catalog that lists it has the same bytes
                paths.setdefault(row["asset_id"], resolve_uri(row["uri"], manifest))
        return cls(catalogs=tuple(catalogs), paths=paths)

    def path(self, asset_id: str) -> str:
        try:
            return self.paths[asset_id]
        except KeyError:
            raise AssetNotFound(f"{asset_id}: planned, but none of the job's catalogs lists it "
                                f"({', '.join(self.catalogs)}); render with the catalogs the plan was "
                                "made from") from None

    def locate(self, row: dict[str, Any]) -> dict[str, Any]:
        """A plan row plus where its files are (``head_path``, each lighting's ``hdri_path``), for the renderer.

        Only the renderer sees these paths; samples are built from the plan row itself.
        """
        return dict(row, head_path=self.path(row["head_asset_id"]),
                    lightings=[dict(lt, hdri_path=self.path(lt["hdri_asset_id"])) for lt in row["lightings"]])
