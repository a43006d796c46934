"""``synthgen`` command line: the asset catalog, then plan -> render -> inspect."""

from __future__ import annotations

import argparse
import os
import sys

from assets_manifest import builtin, cli_errors, licenses, splits
from assets_manifest.schema import AssetError, read_manifest, write_manifest

_fail = cli_errors.fail  # one line ``error: ...`` on stderr; returns the exit code (default 2, bad usage)


def cmd_builtin(args) -> int:
    config = builtin.BuiltinConfig(
        procedural_hdris=args.hdris,
        hdri_width=args.hdri_width,
        heads=args.heads,
        include_bpy_hdris=not args.no_blender_hdris,
        fractions=splits.parse_fractions(args.fractions),
        force=args.force,
    )
    path = builtin.build(args.out, config, progress=not args.quiet)
    _summary(path)
    return 0


def cmd_ict_facekit(args) -> int:
    from assets_manifest import ict_facekit

    path = ict_facekit.build(args.path, args.out, args.heads, seed=args.seed, identity_sigma=args.identity_sigma,
                             fractions=args.fractions, progress=not args.quiet, overwrite=args.overwrite)
    _summary(path)
    return 0


def probe_blender(path: str) -> dict:
    """The catalog's FBX/.blend reader: Blender (the render extra), imported only when such a head is met."""
    try:
        from synthgen.render import mesh_probe
    except ImportError as e:
        suffix = os.path.splitext(path)[1].lower()
        raise AssetError(f"{path}: reading {suffix} needs Blender; install the render extra "
                         f"(pip install '.[render]', Python 3.13) ({e})") from None
    return mesh_probe.probe(path)


def cmd_scan(args) -> int:
    from assets_manifest import scan

    out = args.out
    result = scan.scan(args.folder, out, license=args.license, source=args.source,
                       fractions=args.fractions, progress=not args.quiet, probe_blender=probe_blender)
    for p in result.problems:
        print(p, file=sys.stderr)
    if result.problems and not args.skip_bad:
        return _fail(f"{len(result.problems)} problem(s) in {args.folder}; nothing written "
                     "(fix them, or pass --skip-bad to catalogue the good assets only)", 1)
    if not result.rows:
        return _fail(f"{args.folder}: no heads or HDRIs found", 1)
    write_manifest(result.rows, out)
    _summary(out)
    if result.skipped:
        more = len(result.skipped) - 5
        names = ", ".join(result.skipped[:5]) + (f" and {more} more" if more > 0 else "")
        print(f"skipped {len(result.skipped)} file(s) (--skip-bad): {names}", file=sys.stderr)
    return 1 if result.problems else 0


def cmd_validate(args) -> int:
    from assets_manifest import validate

    problems = validate.validate(args.manifest, progress=not args.quiet,
                                 on_problem=lambda p: print(p, file=sys.stderr), probe_blender=probe_blender)
    n = read_manifest(args.manifest).num_rows
    if problems:
        return _fail(f"{args.manifest}: {len(problems)} problem(s) in {n} asset(s)", 1)
    print(f"{args.manifest}: {n} asset(s) OK")
    return 0


def cmd_split(args) -> int:
    table = read_manifest(args.manifest)
    out = args.out or args.manifest
    write_manifest(splits.assign(table, args.fractions), out)
    _summary(out)
    return 0


def cmd_filter(args) -> int:
    table = read_manifest(args.manifest)
    try:
        kept = licenses.filter_table(table, args.allow_license.split(","))
    except AssetError as e:  # an unknown licence in --allow-license: a bad value
        raise cli_errors.usage(e) from None
    write_manifest(kept, args.out)
    print(f"kept {kept.num_rows} of {table.num_rows} asset(s) with licence in {args.allow_license}")
    _summary(args.out)
    return 0


def cmd_preview(args) -> int:
    from assets_manifest import contact_sheet
    from assets_manifest.schema import read_rows, resolve_uri

    from synthgen import locate

    rows = read_rows(args.manifest)
    if any(r["kind"] == "hdri" for r in rows):
        out = contact_sheet.hdri_sheet(args.manifest, args.out, progress=not args.quiet)
        print(f"wrote {out} (HDRIs)")
    elif not any(r["kind"] == "head" for r in rows):
        raise cli_errors.runtime(AssetError(f"{args.manifest}: no heads or HDRIs to show"))
    assets = locate.AssetPaths.from_catalogs([args.manifest])
    heads = sorted((resolve_uri(r["uri"], args.manifest), r["asset_id"]) for r in rows if r["kind"] == "head")
    # each head as the renderer imports it: units and axes, material roles, textures, appearance
    heads = [(path, assets.head_import_options(asset_id)) for path, asset_id in heads]
    if heads and args.heads:
        from synthgen.render import head_preview  # Cycles: only the render environment has it
        from synthgen.render.blender_log import redirect_fd1

        heads_png = os.path.splitext(args.out)[0] + "_heads.png"
        with redirect_fd1(os.path.splitext(args.out)[0] + "_blender.log"):
            head_preview.render_head_sheet(heads[: args.heads], head_preview.builtin_hdri("studio.exr"),
                                           heads_png, resolution=160, samples=16, exposure=-0.7)
        print(f"wrote {heads_png} ({min(len(heads), args.heads)} heads, Cycles)")
    return 0


def _job(args):
    from synthgen import job as jobs

    return jobs.load(args.job, args.set or [])


def _out(args, job) -> str:
    return args.out or os.path.join("out", job.job.id)


OWN_ENTRIES = ("dataset.json", "plan.parquet", "completed")  # any one marks a folder synthgen wrote


def _not_ours(out: str, storage_options: dict | None = None) -> str | None:
    """One line refusing ``out`` when it is a file, or a non-empty folder synthgen did not write; else None."""
    from synthgen import storage

    dest = storage.open_dest(out, storage_options)
    try:
        with dest.reaching():  # a store that is down or still starting: one line naming its endpoint
            if not dest.fs.isdir(dest.root):
                return f"--out {out}: a file, not a folder" if dest.fs.exists(dest.root) else None
            names = {os.path.basename(p.rstrip("/")) for p in dest.fs.ls(dest.root, detail=False)}
    except FileNotFoundError:
        return None
    if not names or names & set(OWN_ENTRIES):
        return None
    return (f"--out {out}: a folder with other files, not a synthgen output (no dataset.json, plan.parquet "
            "or completed/); give a new or empty folder")


def cmd_plan(args) -> int:
    from synthgen import resume, storage

    job = _job(args)
    out = _out(args, job)
    if refusal := _not_ours(out):
        return _fail(refusal)
    # the render's guard: shards already there must have been rendered from this plan (or --overwrite)
    table = resume.prepare(job, storage.open_dest(out), overwrite=args.overwrite).table
    path = os.path.join(out, "plan.parquet")
    shards = len(set(table.column("shard").to_pylist()))
    print(f"wrote {path}: {table.num_rows} group(s) in {shards} shard(s), "
          f"{job.lightings_per_group} lightings per group ({table.num_rows * job.lightings_per_group} images)")
    return 0


def _bpy_missing(command: str) -> str | None:
    """One line saying what to install when this Python has no bpy, else None."""
    import importlib.util

    try:
        if importlib.util.find_spec("bpy") is not None:
            return None
    except ValueError:  # sys.modules["bpy"] is None: blocked on purpose
        pass
    py = "%d.%d" % sys.version_info[:2]
    if sys.version_info[:2] != (3, 13):
        return (f"{command} needs Blender's bpy 5.2, which is built for Python 3.13 only (this is Python {py}): "
                "in a Python 3.13 environment, pip install '.[render]'")
    return f"{command} needs Blender's bpy module: pip install '.[render]'"


def cmd_render(args) -> int:
    from assets_manifest.schema import has_scheme

    # A driver joining a cluster (--address) may lack bpy: its workers render.
    if args.local or not (args.address or os.environ.get("RAY_ADDRESS")):
        if missing := _bpy_missing("synthgen render"):
            return _fail(missing)
    job = _job(args)
    out = _out(args, job)
    if args.local and has_scheme(out):
        return _fail(f"--out {out}: --local writes to a local folder; leave out --local for fsspec URLs")
    from synthgen import storage

    if refusal := _not_ours(out, storage.parse_storage_options(args.storage_option) if has_scheme(out) else None):
        return _fail(refusal)  # before anything is written: dataset.json and shards/ would land among them
    again = "run it again without --overwrite to resume" if args.overwrite else \
        "run the same command again to resume"
    if args.local:
        from synthgen import runner

        try:
            summary = runner.run_local(job, out, overwrite=args.overwrite, progress=not args.quiet)
        except KeyboardInterrupt:
            return _fail(f"interrupted; finished shards in {out} are kept: {again}", 130)
        report = None
    else:
        try:
            from synthgen import farm, storage
        except ModuleNotFoundError as e:
            if e.name != "ray":
                raise
            return _fail("synthgen render runs on Ray: pip install '.[farm]' (or pass --local for one process)")
        opts = farm.FarmOptions(
            address=args.address, workers=args.workers, cpus_per_worker=args.cpus_per_worker,
            gpus_per_worker=args.gpus_per_worker, memory_gb=args.memory_gb, max_retries=args.max_retries,
            recycle_groups=args.recycle_groups, max_rss_gb=args.max_rss_gb, stage_dir=args.stage_dir,
            storage_options=storage.parse_storage_options(args.storage_option), num_cpus=args.num_cpus)
        try:
            summary = farm.run_farm(job, out, opts, progress=not args.quiet, overwrite=args.overwrite)
        except farm.FarmError as e:
            return _fail(str(e), 1)
        except KeyboardInterrupt:
            return _fail(f"interrupted; finished shards in {out} are kept: {again}", 130)
        out = summary["out"]
        report = summary["report"]
    join = (lambda name: f"{out}/{name}") if has_scheme(out) else (lambda name: os.path.join(out, name))
    print(f"{out}: planned {summary['planned']}, written {summary['written']}, failed {summary['failed']} "
          f"({summary['images']} images, {summary['wall_s']:.1f} s)")
    if report:
        from synthgen import farm_report

        for line in farm_report.lines(report)[1:]:
            print(f"  {line}")
        print(f"  report:  {join('farm_report.json')}")
    print(f"  dataset: {join('dataset.json')}")
    print(f"  preview: {join('preview.png')}")
    if summary["failed"]:
        print(f"  failures: {join('failures.parquet')}")
    return 0


def cmd_inspect(args) -> int:
    from synthgen import dataset

    from synthgen import storage

    lines, problems = dataset.inspect(args.out_dir, storage.parse_storage_options(args.storage_option))
    if not lines:  # no dataset to report on (no such folder, no dataset.json): that one line
        return _fail(problems[0], 1)
    for line in lines:
        print(line)
    for p in problems:
        print(p, file=sys.stderr)
    if problems:
        return _fail(f"{args.out_dir}: {len(problems)} problem(s)", 1)
    print("all shards match dataset.json and the relight-wds shard format")
    return 0


def cmd_show(args) -> int:
    _summary(args.manifest)
    return 0


def _summary(path: str) -> None:
    table = read_manifest(path)
    c = splits.counts(table)
    print(f"{path}: {table.num_rows} asset(s)")
    for kind in ("head", "hdri"):
        parts = ", ".join(f"{s} {c.get((kind, s), 0)}" for s in ("train", "val", "test", "unassigned") if c.get((kind, s)))
        print(f"  {kind:5s} {sum(v for (k, _), v in c.items() if k == kind):4d}  ({parts or 'none'})")
    lic = sorted(set(table.column("license").to_pylist()))
    print(f"  licences: {', '.join(lic) or 'none'}")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="synthgen", description="Synthetic relighting data: assets, plans, renders.",
                                epilog="Exit codes: 0 success, 1 runtime failure (bad or missing data, failed "
                                       "shards), 2 bad usage, 130 interrupted.")
    p.add_argument(cli_errors.DEBUG_FLAG, action="store_true", help=cli_errors.DEBUG_HELP)
    sub = p.add_subparsers(dest="command", required=True)
    assets = sub.add_parser("assets", help="the asset catalog (heads and HDR maps)",
                            description="Build, scan, validate, split and filter asset manifests.")
    a = assets.add_subparsers(dest="assets_command", required=True)

    b = a.add_parser("builtin", help="write the built-in catalog (no download) and its manifest")
    b.add_argument("--out", required=True, help="folder for the assets and manifest.parquet")
    b.add_argument("--hdris", type=int, default=builtin.BuiltinConfig.procedural_hdris,
                   help="number of procedural HDRIs (default %(default)s)")
    b.add_argument("--hdri-width", type=int, default=builtin.BuiltinConfig.hdri_width,
                   help="procedural HDRI width in pixels (default %(default)s)")
    b.add_argument("--heads", type=int, default=builtin.BuiltinConfig.heads,
                   help="number of procedural heads (default %(default)s)")
    b.add_argument("--no-blender-hdris", action="store_true", help="leave out the 8 HDRIs bundled with bpy")
    b.add_argument("--fractions", default="0.8,0.1,0.1", help="train,val,test fractions (default %(default)s)")
    b.add_argument("--force", action="store_true", help="rewrite files that already exist")
    b.set_defaults(func=cmd_builtin)

    ict = a.add_parser("ict-facekit", help="sample ICT-FaceKit identities into a head catalog",
                       description="Read FaceXModel/ of a local ICT-FaceKit clone (MIT; not shipped) and write N "
                                   "heads (OBJ + MTL in metres, with sidecars) and manifest.parquet into --out.")
    ict.add_argument("path", help="a clone of https://github.com/ICT-VGL/ICT-FaceKit, or its FaceXModel folder")
    ict.add_argument("--heads", type=int, required=True, help="number of heads to sample")
    ict.add_argument("--out", required=True, help="catalog folder to create (written whole, then renamed)")
    ict.add_argument("--seed", type=int, default=0, help="head i draws from SeedSequence([seed, i]) (default 0)")
    ict.add_argument("--identity-sigma", type=float, default=1.0,
                     help="standard deviation of the identity weights (default %(default)s, as the FaceKit's sampler)")
    ict.add_argument("--fractions", default="0.8,0.1,0.1", help="train,val,test fractions (default %(default)s)")
    ict.add_argument("--overwrite", action="store_true", help="replace --out if it is a catalog already")
    ict.set_defaults(func=cmd_ict_facekit)

    s = a.add_parser("scan", help="catalogue the heads and HDRIs under a folder")
    s.add_argument("folder")
    s.add_argument("--out", required=True, help="manifest path (.parquet; local or fsspec URL)")
    s.add_argument("--license", help="licence for files without a sidecar (e.g. CC0-1.0, CC-BY-4.0)")
    s.add_argument("--source", help="source/provenance for files without a sidecar")
    s.add_argument("--fractions", default="0.8,0.1,0.1", help="train,val,test fractions (default %(default)s)")
    s.add_argument("--skip-bad", action="store_true", help="write the good assets even if some are bad (exit 1)")
    s.set_defaults(func=cmd_scan)

    v = a.add_parser("validate", help="re-read every asset: hashes, licences, content rules")
    v.add_argument("manifest")
    v.set_defaults(func=cmd_validate)

    sp = a.add_parser("split", help="recompute train/val/test splits from asset ids")
    sp.add_argument("manifest")
    sp.add_argument("--fractions", default="0.8,0.1,0.1", help="train,val,test fractions (default %(default)s)")
    sp.add_argument("--out", help="write here instead of in place")
    sp.set_defaults(func=cmd_split)

    f = a.add_parser("filter", help="keep only assets under permitted licences")
    f.add_argument("manifest")
    f.add_argument("--allow-license", required=True, help=f"comma-separated, e.g. {','.join(licenses.PERMISSIVE)}")
    f.add_argument("--out", required=True)
    f.set_defaults(func=cmd_filter)

    pv = a.add_parser("preview", help="contact sheet PNG of the catalog")
    pv.add_argument("manifest")
    pv.add_argument("--out", required=True, help="output PNG (HDRIs); heads go to <out>_heads.png")
    pv.add_argument("--heads", type=int, default=16, help="heads to render (any format), 0 for none (default 16)")
    pv.set_defaults(func=cmd_preview)

    sh = a.add_parser("show", help="counts per kind, split and licence")
    sh.add_argument("manifest")
    sh.set_defaults(func=cmd_show)

    for cmd in (b, ict, s, v, sp, f, pv, sh):
        cmd.add_argument("-q", "--quiet", action="store_true", help="no progress bar")

    for name, func, helptext in (("plan", cmd_plan, "write plan.parquet: one row per group, from job + catalogs + seed"),
                                 ("render", cmd_render, "plan, render and write the shards (resumes by default)")):
        c = sub.add_parser(name, help=helptext, description=helptext)
        c.add_argument("job", help="job file (TOML), e.g. jobs/quickstart.toml")
        c.add_argument("--out", help="output folder or fsspec URL, e.g. s3://bucket/ds (default out/<job id>)")
        c.add_argument("--set", action="append", metavar="KEY=VALUE",
                       help="override a job key, e.g. --set render.samples=16 (repeatable)")
        c.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
        mode = c.add_mutually_exclusive_group()
        if name == "render":
            mode.add_argument("--resume", action="store_true",
                              help="the default, named for scripts: keep the finished shards (their records must "
                                   "match this job's settings, else the command refuses naming what differs; "
                                   "their checksums must verify) and render the rest")
        mode.add_argument("--overwrite", action="store_true",
                          help="remove the previous run in --out (dataset.json, records, shards) and "
                               + ("plan again" if name == "plan" else "render everything again"))
        if name == "render":
            _farm_arguments(c)
        c.set_defaults(func=func)
    i = sub.add_parser("inspect", help="counts and sizes per split; validate every shard",
                       description="Check a finished dataset: counts, sizes, checksums, every sample "
                                   "against the relight-wds shard format, read with plain webdataset, and the keys "
                                   "each tar holds against index.parquet, plan.parquet and failures.parquet.")
    i.add_argument("out_dir", help="dataset folder or fsspec URL (s3://bucket/ds)")
    i.add_argument("--storage-option", action="append", metavar="KEY=VALUE",
                   help="fsspec option for a URL, e.g. endpoint_url=http://127.0.0.1:8333 (repeatable)")
    i.set_defaults(func=cmd_inspect)
    return p


def _farm_arguments(c: argparse.ArgumentParser) -> None:
    def positive_int(v: str) -> int:
        if not v.isdigit() or int(v) < 1:
            raise argparse.ArgumentTypeError(f"{v!r}: expected a whole number >= 1")
        return int(v)

    g = c.add_argument_group("Ray farm (the default; one Ray task per shard)")
    g.add_argument("--local", action="store_true",
                   help="no Ray: render shard after shard in this process (debugging; no per-group timeout)")
    g.add_argument("--address", help="Ray cluster to join, e.g. 'auto' on a cluster node (default: $RAY_ADDRESS, "
                                     "else start a local Ray)")
    g.add_argument("--workers", type=positive_int, help="at most this many shards render at once "
                                                         "(default: as many as the cluster's resources fit)")
    g.add_argument("--cpus-per-worker", type=float, help="CPUs per worker; Cycles uses as many threads "
                                                         "(default: an even share with --workers, else 4; 2 with GPUs)")
    g.add_argument("--gpus-per-worker", type=float, help="GPUs per worker; Blender renders on the GPU Ray assigns "
                                                         "(default: 1 if the cluster has GPUs and render.device allows)")
    g.add_argument("--memory-gb", type=float, help="memory per worker, declared to Ray's scheduler")
    g.add_argument("--max-retries", type=int, default=3, help="Ray retries of a shard whose worker died "
                                                              "(default %(default)s)")
    g.add_argument("--recycle-groups", type=int, default=200,
                   help="restart a worker's Blender after this many groups, 0 = never (default %(default)s)")
    g.add_argument("--max-rss-gb", type=float, default=8.0,
                   help="restart a worker's Blender once its RSS passes this, 0 = no cap (default %(default)s)")
    g.add_argument("--stage-dir", help="worker-local folder where shards for an fsspec --out are staged "
                                       "(default: the temp dir)")
    g.add_argument("--storage-option", action="append", metavar="KEY=VALUE",
                   help="fsspec option for --out, e.g. endpoint_url=http://127.0.0.1:8333 (repeatable)")
    g.add_argument("--num-cpus", type=int, help="CPUs of the local Ray instance (default: all)")


def main(argv: list[str] | None = None) -> int:
    """Exit codes (assets_manifest.cli_errors): 0 ok, 1 runtime failure, 2 bad usage, 130 interrupted."""
    return cli_errors.run(build_parser, argv,
                          interrupted="interrupted; nothing half-written (manifests are replaced atomically)")


if __name__ == "__main__":
    sys.exit(main())
