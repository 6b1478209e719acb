import { ALGORITHM_DESCRIPTORS } from '../../shared/algorithms/descriptors'
import type { AlgorithmName, TopologyName } from '../../shared/config'
import { HostControl } from './HostControl'
import { useTitle } from './hooks'
import { HttpsNotice } from './host/HttpsNotice'
import { AlgorithmFieldset, HyperParametersFieldset, SubmitBar, TaskFieldset, YourRooms } from './host/CreateRoomSections'
import { useRoomForm } from './host/useRoomForm'

export { NumberField, Select } from './host/fields'

/**
 * `/host`: create a room in a few clicks; `/host?room=X`: that room's control page;
 * `/host?deleted=X`: the create form again, saying that room X is gone.
 */
export function HostPage({ room, deleted = null }: { room: string | null; deleted?: string | null }) {
  return (
    <>
      <HttpsNotice />
      {room ? <HostControl room={room} /> : <CreateRoom deleted={deleted} />}
    </>
  )
}

/** Which topologies an algorithm accepts (its descriptor, shared/algorithms/descriptors.ts). */
export function topologiesFor(a: AlgorithmName): readonly TopologyName[] {
  return ALGORITHM_DESCRIPTORS[a].topologies
}

function CreateRoom({ deleted }: { deleted: string | null }) {
  useTitle('Host a room · tabswarm')
  const form = useRoomForm()
  return (
    <form className="host-create" onSubmit={form.submit} aria-label="Create a room">
      <div className="page-head">
        <h1>Host a training room</h1>
        <p className="lead">Pick how the swarm learns, press Create, and put the join code on the projector. Students join from any browser.</p>
      </div>
      {deleted ? (
        <p className="banner ok" role="status" data-testid="room-deleted">
          Room {deleted} was deleted: everyone in it was disconnected, and its history and checkpoints are gone.
        </p>
      ) : null}
      <YourRooms />
      <AlgorithmFieldset algorithm={form.config.algorithm} onPick={form.pickAlgorithm} />
      <TaskFieldset form={form} topologies={topologiesFor(form.config.algorithm)} preset={form.preset} onPreset={form.pickPreset} />
      <HyperParametersFieldset form={form} />
      <SubmitBar config={form.config} error={form.error} busy={form.busy} waitForStart={form.waitForStart} onWaitForStart={form.setWaitForStart} />
    </form>
  )
}
