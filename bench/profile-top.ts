/**
 * The heaviest frames of a V8 CPU profile (node --cpu-prof), by self time and
 * by total time (a frame and everything it calls), for a first look without
 * a browser:
 *
 *   BENCH_GATEWAY_NODE_ARGS="--cpu-prof --cpu-prof-dir=/tmp/prof" BENCH_ONLY=3 npm run bench
 *   node dist/bench/profile-top.js /tmp/prof/CPU.*.cpuprofile [count]
 */
import { readFileSync } from 'node:fs'

interface ProfileNode {
  id: number
  callFrame: { functionName: string; url: string; lineNumber: number }
  children?: number[]
}

interface Profile {
  nodes: ProfileNode[]
  samples: number[]
  timeDeltas: number[]
  startTime: number
  endTime: number
}

function where (node: ProfileNode): string {
  const { functionName, url, lineNumber } = node.callFrame
  const file = url.replace(/^file:\/\//, '').replace(/^.*\/(node_modules\/)/, '$1').replace(/^.*\/dist\//, 'dist/')
  return `${functionName === '' ? '(anonymous)' : functionName} ${file === '' ? '' : `${file}:${lineNumber + 1}`}`.trim()
}

export function topFrames (profile: Profile, count: number): string {
  const byId = new Map(profile.nodes.map((node) => [node.id, node]))
  const parent = new Map<number, number>()
  for (const node of profile.nodes) for (const child of node.children ?? []) parent.set(child, node.id)
  const selfUs = new Map<number, number>()
  profile.samples.forEach((id, i) => { selfUs.set(id, (selfUs.get(id) ?? 0) + (profile.timeDeltas[i] ?? 0)) })
  const self = new Map<string, number>()
  const total = new Map<string, number>()
  let all = 0
  for (const [id, us] of selfUs) {
    all += us
    const node = byId.get(id)!
    self.set(where(node), (self.get(where(node)) ?? 0) + us)
    // Each frame on the stack once, however deep the recursion.
    const seen = new Set<string>()
    for (let at: number | undefined = id; at !== undefined; at = parent.get(at)) {
      const name = where(byId.get(at)!)
      if (seen.has(name)) continue
      seen.add(name)
      total.set(name, (total.get(name) ?? 0) + us)
    }
  }
  // Shares are of the busy time: idle is reported once, then left out.
  const idle = self.get('(idle)') ?? 0
  const busy = Math.max(1, all - idle)
  const table = (map: Map<string, number>, title: string): string[] => [
    title,
    ...[...map.entries()].filter(([name]) => name !== '(idle)' && name !== '(root)').sort((a, b) => b[1] - a[1]).slice(0, count)
      .map(([name, us]) => `${(us / busy * 100).toFixed(1).padStart(6)} %  ${(us / 1000).toFixed(0).padStart(7)} ms  ${name}`)
  ]
  return [
    `${(all / 1e6).toFixed(2)} s sampled, ${(busy / 1e6).toFixed(2)} s busy (shares below are of the busy time)`,
    ...table(self, '\nself time:'),
    ...table(total, '\ntotal time (with callees):')
  ].join('\n')
}

if (process.argv[1]?.endsWith('profile-top.js') === true) {
  const file = process.argv[2]
  if (file === undefined) {
    process.stderr.write('usage: node dist/bench/profile-top.js <file.cpuprofile> [count]\n')
    process.exit(2)
  }
  process.stdout.write(`${topFrames(JSON.parse(readFileSync(file, 'utf8')) as Profile, Number(process.argv[3] ?? 25))}\n`)
}
