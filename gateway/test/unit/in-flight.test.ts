// InFlight: the in-flight registry behind the drain and the in-flight gauges: add, delete once, size, iteration, slots reused (it never grows past the peak).
import t from 'tap'
import { InFlight } from '../../src/in-flight.js'

t.test('add, delete, size and iteration', async (t) => {
  const set = new InFlight<string>()
  const a = set.add('a')
  const b = set.add('b')
  const c = set.add('c')
  t.equal(set.size, 3)
  t.same([...set], ['a', 'b', 'c'])
  set.delete(b)
  t.equal(set.size, 2)
  t.same([...set], ['a', 'c'])
  set.delete(b)
  t.equal(set.size, 2, 'deleting a freed slot again changes nothing')
  set.delete(a)
  set.delete(c)
  t.equal(set.size, 0)
  t.same([...set], [])
})

t.test('freed slots are reused: the registry never grows past its peak', async (t) => {
  const set = new InFlight<{ id: number }>()
  const live: number[] = []
  for (let i = 0; i < 32; i++) live.push(set.add({ id: i }))
  let highest = Math.max(...live)
  for (let i = 32; i < 10_000; i++) {
    set.delete(live.shift()!)
    const slot = set.add({ id: i })
    highest = Math.max(highest, slot)
    live.push(slot)
  }
  t.equal(highest, 31, 'only slots 0…31 were ever used')
  t.equal(set.size, 32)
  t.same([...set].map((item) => item.id).sort((a, b) => a - b), Array.from({ length: 32 }, (_, i) => 10_000 - 32 + i))
})
