/** The boot benchmark's verdicts and tables: timings per cell, then bytes (image, read set, fetched). */
import type { PreparedImages, ReadSet } from './boot-images.js';
import { type BootCell, type CellSummary } from './boot-runs.js';
import { mb, verdictText } from './convert-shared.js';
import { num, ratioOf } from './mount-shared.js';
import { formatColumns } from './report.js';

/** Targets of issue 6. */
export const BOOT_TARGETS = {
  /** original (pull + run) seconds to first output ÷ boot image (cold cache, base on node) seconds: at least this. */
  firstOutputRatio: 5,
  /** Chunk bytes a cold boot fetched ÷ the app's read set rounded up to whole chunks: at most this. */
  fetchedOverRead: 1.3,
  /** The premise: the app's start reads less than this fraction of the image's file bytes. */
  startReadFraction: 0.1,
  /** The premise: the original image is at least this many bytes (layers as stored in the registry). */
  imageBytes: 500e6,
} as const;

/** Ratios and verdicts over the cell medians. */
export interface BootVerdicts {
  /** original-cold ÷ boot-cold, first output (judged) and exit. */
  firstOutputRatio: number | null;
  exitRatio: number | null;
  /** original-cold ÷ boot-cold-base (base pulled over the link too). */
  firstOutputRatioBasePulled: number | null;
  exitRatioBasePulled: number | null;
  /** original-cold ÷ boot-warm. */
  firstOutputRatioWarm: number | null;
  /** boot-cold store bytes (stored, i.e. on the wire) ÷ the read set's touched chunks' stored bytes (judged). */
  fetchedOverRead: number | null;
  /** The same in uncompressed bytes: chunks in the node cache after boot-cold ÷ touched chunks. */
  fetchedOverReadPlain: number | null;
  /** boot-cold-base store bytes ÷ read set (stored). */
  fetchedOverReadBasePulled: number | null;
  firstOutputPass: boolean | null;
  fetchedPass: boolean | null;
}

const cellOf = (cells: readonly CellSummary[], c: BootCell): CellSummary => cells.find((x) => x.cell === c)!;

/** Compute the ratios and verdicts. */
export function verdicts(cells: readonly CellSummary[], readSet: ReadSet | undefined): BootVerdicts {
  const first = (c: BootCell): number | null => cellOf(cells, c).firstOutputSeconds.median;
  const exit = (c: BootCell): number | null => cellOf(cells, c).exitSeconds.median;
  const firstOutputRatio = ratioOf(first('original-cold'), first('boot-cold'));
  const fetchedOverRead = ratioOf(cellOf(cells, 'boot-cold').storeBytes.median, readSet?.touchedStoredBytes);
  return {
    firstOutputRatio,
    exitRatio: ratioOf(exit('original-cold'), exit('boot-cold')),
    firstOutputRatioBasePulled: ratioOf(first('original-cold'), first('boot-cold-base')),
    exitRatioBasePulled: ratioOf(exit('original-cold'), exit('boot-cold-base')),
    firstOutputRatioWarm: ratioOf(first('original-cold'), first('boot-warm')),
    fetchedOverRead,
    fetchedOverReadPlain: ratioOf(cellOf(cells, 'boot-cold').cachePlainBytes.median, readSet?.touchedPlainBytes),
    fetchedOverReadBasePulled: ratioOf(cellOf(cells, 'boot-cold-base').storeBytes.median, readSet?.touchedStoredBytes),
    firstOutputPass: firstOutputRatio === null ? null : firstOutputRatio >= BOOT_TARGETS.firstOutputRatio,
    fetchedPass: fetchedOverRead === null ? null : fetchedOverRead <= BOOT_TARGETS.fetchedOverRead,
  };
}

/** Timings per cell: pull, first output, exit (medians, min-max of first output), bytes moved, ratio. */
export function timingTable(cells: readonly CellSummary[], v: BootVerdicts): string {
  const ratio: Partial<Record<BootCell, [number | null, string, string]>> = {
    'boot-cold': [v.firstOutputRatio, `>=${BOOT_TARGETS.firstOutputRatio}x`, verdictText(v.firstOutputPass)],
    'boot-cold-base': [v.firstOutputRatioBasePulled, 'info', ''],
    'boot-warm': [v.firstOutputRatioWarm, 'info', ''],
  };
  const rows = cells.map((c) => {
    const r = ratio[c.cell];
    return [
      c.label,
      c.pullSeconds.n === 0 ? '-' : num(c.pullSeconds.median, 2),
      num(c.firstOutputSeconds.median, 2),
      `${num(c.firstOutputSeconds.min, 2)}-${num(c.firstOutputSeconds.max, 2)}`,
      num(c.exitSeconds.median, 2),
      c.pullLinkBytes.n === 0 ? '-' : num(c.pullLinkBytes.median === null ? null : c.pullLinkBytes.median / 1e6, 1),
      num(c.runLinkBytes.median === null ? null : c.runLinkBytes.median / 1e6, 1),
      `${num(c.storeBytes.median === null ? null : c.storeBytes.median / 1e6, 2)} / ${num(c.storeChunks.median, 0)}`,
      c.cell === 'original-cold' ? 'ref' : r ? num(r[0], 1, 'x') : '',
      r ? r[1] : '',
      r ? r[2] : '',
    ];
  });
  return formatColumns(['cell', 'pull s', 'first output s', 'min-max', 'exit s', 'pull MB', 'run MB', 'store MB / chunks', 'orig/this', 'target', 'result'], rows, 1);
}

/** Bytes: the images, what the app reads, what a cold boot fetched. */
export function bytesTable(images: PreparedImages | undefined, readSet: ReadSet | undefined, readSetMountReadahead: ReadSet | undefined, cells: readonly CellSummary[], v: BootVerdicts): string {
  const pct = (f: number | undefined): string => (f === undefined ? 'n/a' : `${(100 * f).toFixed(2)} %`);
  const rows: string[][] = [];
  if (images) {
    const o = images.original;
    rows.push([
      'original image: layers in the registry',
      `${mb(o.layerBytes)} (${o.layers.length} layers; tars ${mb(o.rootfsTarBytes)} rootfs + ${mb(o.payloadTarBytes)} payload)`,
      `>=${BOOT_TARGETS.imageBytes / 1e6} MB`,
      o.layerBytes >= BOOT_TARGETS.imageBytes ? 'yes' : 'no (smoke size)',
    ]);
    rows.push(['boot image: layers in the registry', `${mb(images.boot.layerBytes)} (${images.boot.sharedWithBase} of ${images.boot.layers.length} layers are the base's, own ${mb(images.boot.ownLayerBytes)})`, 'info', '']);
    rows.push(['base image', `${mb(images.base.layerBytes)} (${images.base.layers.length} layers)`, 'info', '']);
  }
  if (readSet) {
    rows.push([`app read (FUSE bytes served, chroot, readahead ${readSet.kernelReadaheadKb.measured} KiB)`, `${mb(readSet.readBytes)} in ${readSet.reads} reads = ${pct(readSet.readFraction)} of ${mb(readSet.imageDataBytes)} file data`, `<${100 * BOOT_TARGETS.startReadFraction} %`, readSet.readFraction < BOOT_TARGETS.startReadFraction ? 'yes' : 'no']);
    rows.push(['read set rounded up to chunks', `${readSet.touchedChunks} chunks, ${mb(readSet.touchedPlainBytes)} plain, ${mb(readSet.touchedStoredBytes)} stored`, 'info', '']);
  }
  if (readSetMountReadahead) {
    const r = readSetMountReadahead;
    rows.push([`  same, kernel readahead ${r.kernelReadaheadKb.measured} KiB (bootfs mount)`, `${mb(r.readBytes)} read; ${r.touchedChunks} chunks, ${mb(r.touchedPlainBytes)} plain, ${mb(r.touchedStoredBytes)} stored`, 'info', '']);
  }
  const cold = cells.find((c) => c.cell === 'boot-cold')!;
  const coldBase = cells.find((c) => c.cell === 'boot-cold-base')!;
  rows.push(['cold boot (base on node): store served', `${num(cold.storeChunks.median, 0)} chunks, ${mb(cold.storeBytes.median)} stored`, 'info', '']);
  rows.push(['fetched / read set (stored bytes)', num(v.fetchedOverRead, 3, 'x'), `<=${BOOT_TARGETS.fetchedOverRead}x`, verdictText(v.fetchedPass)]);
  rows.push(['fetched / read set (plain bytes, node cache)', num(v.fetchedOverReadPlain, 3, 'x'), 'info', '']);
  rows.push(['cold boot (base pulled too): store served', `${num(coldBase.storeChunks.median, 0)} chunks, ${mb(coldBase.storeBytes.median)} stored`, 'info', '']);
  rows.push(['exit time original / boot (base on node)', num(v.exitRatio, 1, 'x'), 'info', '']);
  rows.push(['exit time original / boot (base pulled too)', num(v.exitRatioBasePulled, 1, 'x'), 'info', '']);
  return formatColumns(['metric', 'value', 'target', 'result'], rows, 1);
}
