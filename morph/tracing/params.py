"""Every parameter of the tracer in one dataclass, with defaults, recorded in the SWC header.

Lengths are in micrometres (or in voxels when the stack's voxel size is unknown and 1 um is
assumed); thresholds on intensities are in units of the background noise (robust standard
deviation), so that one set of defaults fits 8-bit, 16-bit, dim and bright stacks.
"""

from __future__ import annotations

import dataclasses
import numbers
from dataclasses import dataclass, fields
from typing import Any

import numpy as np

_INF = float("inf")
# the values a numeric parameter can take, (low, high, low excluded), where they are not
# [0, inf) (every other int or float field: a length, threshold, count or factor)
_RANGES: dict[str, tuple[float, float, bool]] = {
    **dict.fromkeys(("background_block_um", "min_noise", "gap_cost", "resample_um", "radius_max_um",
                     "soma_max_radius_um", "chunk_slices", "gap_max_angle_deg", "gap_soma_angle_deg", "gap_long_angle_deg",
                     "path_max_mvox"),
                    (0.0, _INF, True)),
    "background_percentile": (0.0, 100.0, False),
    # the costs exp(power (1 - f)^2) are float32 in the path searches: e^88 is its largest
    "cost_power": (0.0, 80.0, True),
    "path_cost_power": (0.0, 80.0, False),
    "seed_contrast": (-_INF, _INF, False),
    **dict.fromkeys(("tube_weight", "medial_weight", "relative_threshold", "tip_fraction", "steep_terminal_z",
                     "edge_terminal_fraction", "tip_path_aligned", "side_path_aligned"),
                    (0.0, 1.0, False)),
}


@dataclass
class TraceParams:
    """Parameters of :func:`morph.tracing.trace`.

    Every value is checked when the parameters are made: a value no parameter can take (a
    negative length or threshold, a fraction outside [0, 1], a zero angle, scale or pia
    direction) raises :class:`~morph.errors.MorphError` naming the parameter.

    Attributes
    ----------
    polarity
        ``"auto"``, ``"brightfield"`` (dark structure on a bright background) or
        ``"fluorescence"`` (bright on dark).
    defaults_for
        Whose defaults fill the parameters left unset (``None``, see :meth:`resolved`):
        ``"auto"`` (the default) the stack's polarity's; ``"brightfield"`` the settings tuned
        on the synthetic renders (thresholds a few noise units above a noisy background, tip
        walks, side branches), which also trace a faint fluorescence fill with no other
        labelled structure near it better (``bench/trace_accuracy.py --modality fluorescence``, 30
        synthetic fluorescence stacks: mean F1 0.594 with the fluorescence defaults, 0.927
        with these), but on confocal stacks holding other bright structures they trace those
        too (the DIADEM stacks: 1.8 to 14 times the gold's cable, mean F1 at 3 voxels 0.539
        against 0.744 with the fluorescence defaults); ``"fluorescence"`` the settings tuned on
        the DIADEM confocal stacks (high thresholds, a threshold relative to the structure at
        the root). See the parameter table in ``docs/tracing.md``.
    background_block_um
        Size of the blocks (in x and y) over which the background level is estimated, slice
        by slice, before it is subtracted; larger than the thickest neurite, smaller than the
        scale of uneven illumination.
    background_percentile
        Percentile of each block taken as its background (the median: the structure is
        sparse; mirrored for brightfield, where the structure is dark).
    background_fine_um, background_mask
        A second estimate in blocks of ``background_fine_um`` over the voxels the first
        flattening does not show as structure (above ``background_mask`` times each slice's
        noise, smoothed by ``denoise_sigma_um``, widened by 1.5 um), which follows the
        background between the large blocks; a block that is mostly structure keeps the
        first estimate (:func:`morph.tracing.preprocess.flatten_denoise`). 0 (the default)
        estimates once; set it (e.g. 20) when the background varies between the large blocks.
        Its effect on accuracy and on the compartment labels: see
        *Two-pass background* in ``docs/tracing_accuracy.md``.
    denoise_sigma_um
        Gaussian smoothing (physical, made anisotropic by the voxel size).
    tube_scales_um
        Scales of the Hessian tubularity filter (neurite radii to enhance); ``None``: by
        polarity (see :meth:`TraceParams.resolved`, as for the thresholds and ``gap_um``).
    tube_weight
        Weight of tubularity against intensity in the enhanced image (0: intensity only).
    candidate_threshold
        Voxels whose flattened intensity exceeds this many noise units are examined at all.
    threshold_low, threshold_high
        Thresholds on the enhanced value (intensity and tubularity, each in units of its own
        background noise, mixed by ``tube_weight``): voxels above ``low`` make the foreground
        graph; a piece of foreground counts (for gap bridging, soma detection) only if it
        holds voxels above ``high``.
    relative_threshold
        The foreground threshold is raised to this fraction of the brightness of the structure
        at the soma or root, when that is higher than ``threshold_low`` (faint contacts with
        brighter neighbouring structures then do not join them; 0 disables; ``None``: by
        polarity).
    relative_at_soma
        Whether ``relative_threshold`` also applies when the root is a soma (measured on the
        proximal neurites around it). ``None``: only when ``relative_threshold`` is given;
        by default it applies around a seeded root that is not a soma (an axon's start, as in
        the DIADEM stacks), since around a soma the proximal trunks are many times brighter
        than the same cell's thin distal dendrites, which a fraction of them cuts.
    min_noise
        Floor of the noise estimate in grey levels (images whose background is exactly flat,
        as in clipped 8-bit fluorescence, have zero measured noise), and the unit of the
        tubularity term (whose spread at random voxels is 0). A stack that is not 8-bit counts
        in the grey levels of an 8-bit stack of the same full scale
        (:func:`morph.tracing.preprocess.grey_level`).
    cost_power
        The geodesic cost of a voxel is ``exp(cost_power * (1 - f)**2)`` with ``f`` the
        enhanced intensity scaled to [0, 1] (the gray-weighted distance of APP2). At most 80
        (the path searches hold costs as float32, whose largest is about ``e^88``).
    medial_weight
        How much the cost favours the centre of a neurite: the enhanced intensity is multiplied
        by ``1 - w + w * r / rmax`` with ``r`` the local radius (distance to the edge of the
        foreground) and ``rmax`` its maximum nearby (1 on the centreline; APP2's gray-weighted
        distance transform plays the same role).
    gap_um
        Largest staining gap bridged between pieces of foreground (0 disables bridging).
    gap_cost
        Cost per micrometre of a bridge, relative to the cost of the faintest foreground.
    gap_min_size_um
        A piece of foreground is bridged only if it is at least this long (its largest
        extent), so that specks of debris are never joined.
    gap_max_angle_deg
        A bridge must leave the traced structure within this angle of the local direction of
        the neurite it continues (bridges along the neurite, not sideways to other cells).
    gap_from_pieces
        Also bridge from the end of an unreached piece of foreground that points at the traced
        tree (a faint branch cut from its parent near the branch point, where the tree has no
        tip to bridge from); ``None``: by polarity.
    gap_piece_um
        Longest bridge from the end of a piece (``gap_from_pieces``), shorter than ``gap_um``:
        on the synthetic brightfield stacks longer ones join pieces that are not part of the
        cell and cost precision (see ``gap_from_pieces`` in the parameter table of
        ``docs/tracing.md``).
    gap_min_elongation
        A piece of foreground is bridged only if its extent is at least this many times its
        largest local radius (round debris and other cells' somata are never joined; 0
        disables; ``None``: by polarity).
    gap_thickening, gap_thickening_min_um
        A bridge from a tip is refused when the piece of foreground it lands on is thicker
        there (its largest local radius within 5 um of where it lands) than both
        ``gap_thickening`` times the neurite at the tip (the median local radius of the tree
        within 4 um of the tip) and ``gap_thickening_min_um``: a neurite tapers towards its
        tips and does not go on, past a staining gap, as a thicker one. On the synthetic
        brightfield stacks such bridges land on other cells' neurites (0 disables; ``None``:
        by polarity).
    gap_soma_um, gap_soma_angle_deg
        Longest bridge to the soma from the end of a piece that points at the soma's centre
        and runs radially there (both within ``gap_soma_angle_deg``): a dendrite whose first
        microns do not show, where the soma has no tip to bridge from (0 disables; ``None``:
        by polarity).
    gap_long_um, gap_long_angle_deg, gap_long_min_um
        Longer bridges, up to ``gap_long_um``, where a tip and the end of a piece of
        foreground point at each other: the piece lies within ``gap_long_angle_deg`` of the
        tip's direction, its end points back at the tip within the same angle, its main axis
        there is not across the bridge, and both the tip's terminal branch and the piece are
        at least ``gap_long_min_um`` long (a dendrite whose stain fades over more than
        ``gap_um`` and comes back on the same line; other cells' fragments lie at any angle).
        Every edge of the tree longer than ``gap_um`` (such a bridge, or a shorter one running
        steeply along z) is then routed along the minimal-cost path between its ends through
        the image, as ``route_soma_bridges`` routes those near the soma (0, or ``gap_um`` or
        less, disables; ``None``: by polarity). See :func:`morph.tracing.tree.grow`.
    route_soma_bridges
        Replace each bridge over a staining gap (a straight edge of the tree) that leaves
        from within this many soma radii of the soma's centre by the minimal-cost path
        between its ends through the image, unless that path is more than twice as long
        (:func:`morph.tracing.prune.route_long_edges`): straight bridges across the soma's
        blur halo miss the dendrites that curve through it (0 disables).
    min_branch_um
        (``None``: by polarity.) Terminal branches shorter than this (beyond the local radius) are pruned.
    branch_radius_factor
        A terminal branch must also be longer than this many local radii (so that the
        thickness of a neurite or of the soma never makes branches).
    thick_spur_factor
        After the radii are measured on the image, terminal branches reaching less than
        ``min_branch_um`` plus this many radii of the node they hang from are removed, and
        unbranched stems reaching less than ``min_branch_um`` plus one soma radius beyond the
        soma's surface (the blur around dark bodies; 0 disables; ``None``: by polarity).
    spur_ridge, spur_ridge_factor
        A short terminal branch that ``thick_spur_factor`` would remove is kept when it reaches
        at least ``min_branch_um + spur_ridge_factor`` radii from the node it hangs from and
        its nodes beyond that radius stand out by at least ``spur_ridge`` noise units from
        the image 1.5 um to either side (median; a thin side branch near a thick dendrite is a
        ridge of its own, a spur running out through a dark body's blur halo is not; 0
        disables; ``None``: by polarity).
    terminal_ridge, terminal_ridge_margin_um
        Last, every terminal branch (from a branch point or the soma) must stand out as a
        ridge: the median over its nodes of the image at the node minus the brighter of the
        two samples beside it, ``max(1.5, r + terminal_ridge_margin_um)`` um away across it
        in x-y (``r`` the node's radius), must reach ``terminal_ridge`` noise units, however
        long the branch. Paths through the blur halo of a dark body, or down its blur along
        z, run over a smooth slope and are removed (0 disables). See
        :func:`morph.tracing.prune.prune_flat_terminals`.
    steep_terminal_ridge, steep_terminal_z
        After the faint-neurite stage, a terminal branch whose end lies at least
        ``steep_terminal_z`` of its distance from the node it hangs from along z must stand
        out by a median of ``steep_terminal_ridge`` noise units on the same measure as
        ``terminal_ridge`` (paths climbing through the z-blur of structure above or below
        stand out a little across them; 0 disables). See
        :func:`morph.tracing.prune.prune_steep_terminals`.
    edge_terminal_fraction
        Last, a terminal branch with at least this fraction of its nodes within a working
        voxel or 1 um (the larger) of the traced image's x-y border goes: a neurite leaving
        the field is cut at the border, while the background flattening, extrapolated to
        the border, can leave a band along it above the foreground threshold (0 disables).
        See :func:`morph.tracing.prune.prune_edge_terminals`.
    z_stem_deg
        A stem of the soma whose first section reaches 12 um beyond the soma's surface and
        runs over that reach within this many degrees of the z axis is the soma's blur along
        z, and goes with all it leads to, unless that is half the tree's cable or more, or
        reaches further along z than 4 soma radii + 12 um from the soma's centre (a neurite
        leaving along the optical axis, not a column of blur; 0 disables). See
        :func:`morph.tracing.prune.prune_z_stems`.
    tip_fraction
        Terminal branches are retracted to where the image falls below this fraction of the
        branch's mean intensity (the blur beyond a neurite's end, 0 disables).
    tip_extend_um, tip_extend_threshold, tip_extend_contrast
        Longest walk from a tip along the image, in 1 um steps within 30 degrees of the
        branch's direction; a step counts when its mean value reaches ``tip_extend_threshold``
        noise units and it stands ``tip_extend_contrast`` above both sides 1.5 um across it in
        x-y (a thin branch fading below the foreground threshold; 0 disables; ``None``: by
        polarity). See :func:`morph.tracing.prune.extend_tips`.
    side_branch_um
        Longest walk of a side branch started from the tree: from every unbranched node, rays
        leave at 45-90 degrees off the neurite, the one standing out most above its sides is
        walked like a tip, and it becomes a branch when 6 of its first 7 steps count (thin side
        branches whose start is below the foreground threshold; 0 disables; ``None``: by
        polarity). See :func:`morph.tracing.prune.find_side_branches`.
    faint_reach_um, faint_min_um, faint_contrast
        Faint neurites: the pieces of foreground with no voxel above ``threshold_high`` (a
        thin dendrite near the noise breaks into such pieces, which the tree stage never
        bridges to) at least ``faint_min_um`` across, whose nearest voxel lies within
        ``faint_reach_um`` of the refined tree and at most half of them within 3 um of it, are
        joined to the tree by the least-cost path through the image from their far end; a
        path is kept when, outside the tree, it stands above both sides 1.5 um across it in
        x-y by a median of ``faint_contrast`` noise units; kept paths join the tree, so that
        pieces further out are tried next (0 disables; ``None``: by polarity). See
        :func:`morph.tracing.faint.join_paths`.
    faint_aligned_contrast
        A faint path standing out by less than ``faint_contrast`` but at least this many noise
        units is kept when the image is a tube along it: at 60 % of its points outside the
        tree or more, the Hessian's axis of least curvature at 0.5 um lies within 37 degrees
        of the path (:func:`morph.tracing.faint.aligned_fraction`; the texture's grains are
        round). 0, or ``faint_contrast`` or more, turns the second test off.
    tip_path_um, tip_path_contrast, tip_path_aligned
        Last, each tip (not the axon's) is continued by the least-cost path through the image
        to the shell ``tip_path_um`` away within 40 degrees of its direction, kept when,
        beyond 2 um from the tip, it stays 2 um clear of the tree, stands out from both
        sides by a median of ``tip_path_contrast`` noise units and follows the image's tube
        axis at ``tip_path_aligned`` of its points; kept paths are continued the same way, up
        to four times (a thin dendrite whose single steps are too faint for the tip walks; 0
        disables; ``None``: by polarity). See :func:`morph.tracing.faint.tip_paths`.
    side_path_um, side_path_contrast, side_path_aligned
        Then thin side branches are started the same way: from the tree's unbranched nodes
        (one per 4 um and direction), where a straight ray 45-90 degrees off the neurite
        reaches a mean of 1.5 noise units over 6 um and rises 0.9 above the darker of its
        sides, the least-cost path to the shell ``side_path_um`` away within 40 degrees of the
        ray, kept when, beyond 4 um from its start, it stays 4 um clear of the tree, stands
        out by a median of ``side_path_contrast`` noise units and follows the tube axis at
        ``side_path_aligned`` of its points (a side branch too faint at its start for the
        side-branch walks; 0 disables; ``None``: by polarity). See
        :func:`morph.tracing.prune.side_candidates` and :func:`morph.tracing.faint.tip_paths`.
    tip_recentre_um
        Each step of a tip's walk ends on the brightest point across it, at most this far in
        x-y and twice as far along the other perpendicular (mostly z), before it is judged, so
        that a walk whose direction is a little off stays on the neurite (0: the step ends
        where its direction points). See its row of the parameter table in ``docs/tracing.md``.
    smooth_iterations
        Rounds of smoothing of node positions along the tree (each: average with neighbours).
    resample_um
        Node spacing of the output.
    radius_max_um
        Largest radius measured from the image profile.
    psf_sigma_um
        Lateral Gaussian sigma of the microscope's blur, taken out of the measured radii with
        the denoising and the voxels' footprint (0.2 um: about a 0.7-NA objective in visible
        light; a 1.4-NA oil objective is nearer 0.1). See :mod:`morph.tracing.radius`.
    soma_min_radius_um
        Smallest body that counts as a soma; a seed on a thinner structure is a root point.
    soma_max_radius_um
        Largest soma radius considered.
    other_somata
        Look for other cells' somata (round stained bodies at least 0.7 times as thick as the
        chosen soma, :func:`morph.tracing.soma.other_somata`) and leave to each the neurites
        nearer to it along the foreground than to the chosen soma: two filled cells whose
        dendrites touch are traced apart. On for brightfield, off for fluorescence (see
        :meth:`resolved`).
    axon_confidence_min
        The axon heuristic labels an axon only from this confidence up (below it the header
        says 'not identified'). A wrong label silently moves dendrite cable into the axon's
        features, while a missing one is visible and one ``--axon`` click away; lower it to
        have an axon labelled on more stacks, more of them wrongly (see "The confidence
        threshold" in ``docs/tracing.md``).
    axon_origin_drop
        Where the axon starts on the stem that holds it: after the branch point nearest to the
        axon where the trunk's radius is at least this many times the path's after it
        (:func:`morph.tracing.label.axon_origin`).
    axon_origin_max_um
        Farthest along its stem, from the soma, that an axon's start is looked for.
    pia_direction
        Unit vector ``(x, y, z)`` pointing to the pia, if known (for the apical dendrite and
        the axon heuristic's downward rank); ``None``: up in the image (-y).
    apical_dominance
        The stem reaching furthest up (towards ``pia_direction``, or -y) is apical when it
        reaches at least this many times as far up as the next stem and its trunk is the
        thickest (:func:`morph.tracing.label.label`) ...
    apical_thickness
        ... or when its trunk is at least this many times as thick as every other stem's.
    root_is_endpoint
        When the tree is rooted at a seed point rather than a soma, the root is where the
        neurite starts (as in an SWC of an axon): of the branches leaving the root only the
        one holding the most cable is kept.
    z_blur_correction
        Measure how much longer the structure extends along z than across (the microscope's
        elongated point-spread function) and trace in a space where z is compressed by that
        factor (at most 4), so the blur along z never makes branches; output coordinates
        are physical.
    coverage_z_power
        In the tracing space, coverage distances (which decide whether a branch is more than
        the blur of its parent) divide z once more by the elongation to this power (the blur's
        tail along z is often longer than its measured median extent).
    chunk_slices
        Slices per chunk for the local stages (bounds memory).
    working_voxel_um
        A stack whose x-y voxels are at most half this size is traced on blocks of k x k
        voxels (their mean), k the largest whole number with k times the voxel size within
        it; the SWC stays in the stack's frame and micrometres, and the header says so. At
        Allen-like 0.12 um voxels (k = 2) about 4.5 times faster; on three synthetic cells F1
        within 0.02 of tracing at the stack's own voxels, but 0.06 lower on an aspiny cell
        whose thinnest dendrites the blocks dim (see the parameter table in
        ``docs/tracing.md``); 0 traces at the stack's own.
    seed_reach_um
        A seed (``--seeds``; not a root seed) farther than this from the traced tree is joined
        to it by the minimal-cost path through the image (:mod:`morph.tracing.seeds`): the
        user's click on a neurite the tracer left out.
    seed_margin_um
        That path is searched in the box around the seed reaching this far beyond the tree's
        nearest point.
    seed_contrast
        A seed with no foreground voxel within its snapping distance (5 um or 3 voxels) is a
        click on a faint neurite when the flattened, denoised image within 1 um of it reaches
        this many noise units; below, it lies on background and the run stops with an error.
        Lower it to join seeds on neurites fainter still; 0 (or less) accepts every point.
    path_cost_power, path_ref
        The paths the user asks for (``morph trace-path``, and seeds joined to the tree) cost
        ``exp(path_cost_power (1 - f)^2)`` per micrometre (``path_cost_power`` at most 80),
        ``f`` the image over a reference clipped to [0, 1]: ``path_ref`` noise units, or, when
        0, the brightest voxel within 1 um of the user's point (of the fainter of the two
        points of a trace-path; at least one noise unit), the brightness of the neurite
        clicked on. Brightfield 5 (the cost
        graded from the brightest neurites down to the background, so that a path follows a
        faint neurite across a short staining gap rather than detouring through the
        texture); fluorescence 0 (neurites far above the noise, with dim out-of-focus haze
        around them that a low reference would make cheap).
    path_max_mvox
        Those paths are searched whole in a box of at most this many million voxels (the
        search holds about 100 bytes per voxel: 4 is about 400 MB); a larger box (a point
        far from the tree on a finely sampled stack) is searched on block means first, then
        at the image's voxels along the coarse path (:func:`morph.tracing.prune.min_cost_path`).
    """

    polarity: str = "auto"
    defaults_for: str = "auto"
    background_block_um: float = 32.0
    background_percentile: float = 50.0
    background_fine_um: float = 0.0
    background_mask: float = 3.0
    denoise_sigma_um: float = 0.8
    tube_scales_um: tuple[float, ...] | None = None
    tube_weight: float = 0.5
    candidate_threshold: float | None = None
    threshold_low: float | None = None
    threshold_high: float | None = None
    relative_threshold: float | None = None
    relative_at_soma: bool | None = None
    min_noise: float = 1.0
    cost_power: float = 8.0
    medial_weight: float = 0.7
    gap_um: float | None = None
    gap_cost: float = 4.0
    gap_min_size_um: float = 6.0
    gap_max_angle_deg: float = 60.0
    gap_from_pieces: bool | None = None
    gap_piece_um: float = 4.0
    gap_min_elongation: float | None = None
    gap_thickening: float | None = None
    gap_thickening_min_um: float = 1.0
    faint_reach_um: float | None = None
    faint_min_um: float = 3.0
    faint_contrast: float = 1.5
    faint_aligned_contrast: float = 1.2
    tip_path_um: float | None = None
    tip_path_contrast: float = 1.0
    tip_path_aligned: float = 0.6
    side_path_um: float | None = None
    side_path_contrast: float = 1.5
    side_path_aligned: float = 0.7
    gap_soma_um: float | None = None
    gap_soma_angle_deg: float = 30.0
    gap_long_um: float | None = None
    gap_long_angle_deg: float = 20.0
    gap_long_min_um: float = 10.0
    route_soma_bridges: float = 2.0
    min_branch_um: float | None = None
    branch_radius_factor: float | None = None
    thick_spur_factor: float | None = None
    spur_ridge: float | None = None
    spur_ridge_factor: float = 1.0
    terminal_ridge: float = 0.8
    terminal_ridge_margin_um: float = 1.0
    steep_terminal_ridge: float = 1.2
    steep_terminal_z: float = 0.6
    edge_terminal_fraction: float = 0.6
    z_stem_deg: float = 10.0
    tip_fraction: float = 0.35
    tip_extend_um: float | None = None
    tip_extend_threshold: float = 1.8
    tip_extend_contrast: float = 1.2
    side_branch_um: float | None = None
    tip_recentre_um: float = 0.5
    smooth_iterations: int = 2
    resample_um: float = 1.0
    radius_max_um: float = 10.0
    psf_sigma_um: float = 0.2
    soma_min_radius_um: float = 3.0
    soma_max_radius_um: float = 25.0
    other_somata: bool | None = None
    axon_confidence_min: float = 0.6
    axon_origin_drop: float = 1.3
    axon_origin_max_um: float = 50.0
    pia_direction: tuple[float, float, float] | None = None
    apical_dominance: float = 2.0
    apical_thickness: float = 1.3
    root_is_endpoint: bool = True
    z_blur_correction: bool = True
    z_spur_bounded: bool | None = None
    coverage_z_power: float = 0.0
    chunk_slices: int = 12
    working_voxel_um: float = 0.25
    seed_reach_um: float = 2.0
    seed_margin_um: float = 10.0
    seed_contrast: float = 2.0
    path_cost_power: float = 4.0
    path_ref: float | None = None
    path_max_mvox: float = 4.0

    def __post_init__(self) -> None:
        """Refuse values that cannot mean anything, naming the parameter (a typo on the
        command line must not trace quietly with it)."""
        from morph.errors import MorphError

        def bad(name: str, what: str) -> MorphError:
            return MorphError(f"tracing parameter {name} must be {what}, got {getattr(self, name)!r}",
                              hint="see the parameter table in docs/tracing.md")

        if self.polarity not in ("auto", "brightfield", "fluorescence"):
            raise bad("polarity", "auto, brightfield or fluorescence")
        if self.defaults_for not in ("auto", "brightfield", "fluorescence"):
            raise bad("defaults_for", "auto, brightfield or fluorescence")
        for f in fields(self):
            v = getattr(self, f.name)
            if v is None or not str(f.type).startswith(("float", "int")):
                continue
            name = f.name
            lo, hi, lo_open = _RANGES.get(name, (0.0, _INF, False))
            if isinstance(v, bool) or not isinstance(v, numbers.Real) or not np.isfinite(v):
                raise bad(name, "a number")
            if (v <= lo if lo_open else v < lo) or v > hi:
                left = "(" if lo_open else "["
                raise bad(name, f"in {left}{lo:g}, {hi:g}]" if np.isfinite(hi) else
                          ("positive" if lo_open else "0 or more"))
        if self.tube_scales_um is not None:
            try:
                sc = np.asarray(self.tube_scales_um, dtype=np.float64)
            except (TypeError, ValueError):
                sc = np.zeros(0)
            if sc.ndim != 1 or not sc.size or not np.all(np.isfinite(sc) & (sc > 0)):
                raise bad("tube_scales_um", "one or more positive lengths (um), e.g. 0.5,1")
        if self.pia_direction is not None:
            d = np.asarray(self.pia_direction, dtype=np.float64).reshape(-1)
            if d.size != 3 or not np.all(np.isfinite(d)) or not np.any(d):
                raise bad("pia_direction", "three numbers X,Y,Z, not all zero (towards the pia, e.g. 0,-1,0)")
        if self.soma_min_radius_um > self.soma_max_radius_um:
            raise bad("soma_min_radius_um", f"at most soma_max_radius_um ({self.soma_max_radius_um:g})")

    def resolved(self, polarity: str) -> TraceParams:
        """A copy with the polarity-dependent defaults (``None`` fields) filled in: those of
        ``polarity``, or of ``defaults_for`` when it is not ``"auto"``.

        Fluorescence (confocal: high contrast, thick blur along z): ``candidate_threshold``
        1.5, ``threshold_low`` 4, ``threshold_high`` 10, ``tube_scales_um`` (1, 2), ``gap_um``
        8, ``relative_threshold`` 0.09, ``min_branch_um`` 3, ``branch_radius_factor`` 2,
        ``gap_from_pieces`` False. Brightfield (biocytin: thin dendrites barely above the
        background texture): 1.2, 1.7, 3.5 (a low foreground threshold: only what connects to
        the cell is kept), (0.5, 1), 15, 0 (the soma is far darker than the thin dendrites),
        2, 1.5 (thin side branches of thick dendrites are kept), True (with bridges from a
        piece's end of at most ``gap_piece_um``, 4 um: a faint branch whose start is lost near
        its branch point is joined; bridges as long as ``gap_um`` cost precision on the
        synthetic stacks); ``thick_spur_factor`` 0 for
        fluorescence, 3 for brightfield (the halo of dark bodies makes spurs);
        ``gap_min_elongation`` 0 for fluorescence, 6 for brightfield (round debris);
        ``gap_thickening`` 0 for fluorescence (on the DIADEM stacks it refuses a bridge
        along OP_9's axon), 2 for brightfield;
        ``gap_soma_um`` 0 for fluorescence, 10 for brightfield (thin dendrites fading into
        the soma's halo); ``gap_long_um`` 0 for fluorescence, 30 for brightfield (stain
        fading over long stretches of thin dendrites);
        ``spur_ridge`` 0 for fluorescence, 1 for brightfield; ``tip_extend_um`` 0 for
        fluorescence (it lowers F1 on every DIADEM stack), 20 for brightfield (thin branches fade
        towards their tips, below the foreground threshold); ``side_branch_um`` 0 for fluorescence
        (on the DIADEM stacks it adds 54-97 % cable), 20 for brightfield; ``faint_reach_um`` 0
        for fluorescence (on the DIADEM stacks it lowers the mean F1), 20 for brightfield;
        ``tip_path_um`` 0 for fluorescence (no gain on the DIADEM stacks), 12 for brightfield;
        ``side_path_um`` 0 for fluorescence, 12 for brightfield; ``path_ref`` 0 for
        fluorescence, 5 for brightfield; ``z_spur_bounded`` False for
        fluorescence, True for brightfield (a z-blur tail is no longer than the blur: branches
        running steeply along z are kept; confocal blur tails are longer and are all cut);
        ``other_somata`` False for fluorescence, True for brightfield (the swellings of the
        DIADEM stacks' axons are round bright bodies as thick as the thickest place that
        passes for a soma: traced without seeds, the arbor beyond them is cut off, mean F1
        at 3 voxels 0.31 against 0.65 without the split). What each default does: the
        parameter table in ``docs/tracing.md``; what each stage gains: ``docs/tracing_accuracy.md``.
        """
        bf = (polarity if self.defaults_for == "auto" else self.defaults_for) == "brightfield"
        defaults = {
            "candidate_threshold": 1.2 if bf else 1.5,
            "threshold_low": 1.7 if bf else 4.0,
            "threshold_high": 3.5 if bf else 10.0,
            "tube_scales_um": (0.5, 1.0) if bf else (1.0, 2.0),
            "gap_um": 15.0 if bf else 8.0,
            "relative_threshold": 0.0 if bf else 0.09,
            "min_branch_um": 2.0 if bf else 3.0,
            "branch_radius_factor": 1.5 if bf else 2.0,
            "thick_spur_factor": 3.0 if bf else 0.0,
            "gap_from_pieces": bf,
            "gap_min_elongation": 6.0 if bf else 0.0,
            "gap_thickening": 2.0 if bf else 0.0,
            "gap_soma_um": 10.0 if bf else 0.0,
            "gap_long_um": 30.0 if bf else 0.0,
            "spur_ridge": 1.0 if bf else 0.0,
            "z_spur_bounded": bf,
            "other_somata": bf,
            "tip_extend_um": 20.0 if bf else 0.0,
            "side_branch_um": 20.0 if bf else 0.0,
            "faint_reach_um": 20.0 if bf else 0.0,
            "tip_path_um": 12.0 if bf else 0.0,
            "side_path_um": 12.0 if bf else 0.0,
            "path_ref": 5.0 if bf else 0.0,
        }
        changes = {k: v for k, v in defaults.items() if getattr(self, k) is None}
        if self.relative_at_soma is None:
            changes["relative_at_soma"] = self.relative_threshold is not None
        return dataclasses.replace(self, **changes)

    def replace(self, **changes: Any) -> TraceParams:
        """A copy with some parameters changed."""
        return dataclasses.replace(self, **changes)

    def header_lines(self) -> list[str]:
        """``name = value`` lines for the SWC header."""
        out = []
        for f in fields(self):
            out.append(f"trace parameter {f.name} = {getattr(self, f.name)!r}")
        return out
