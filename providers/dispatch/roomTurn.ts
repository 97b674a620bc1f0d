import { NO_TURN, type Turn, type TurnEvent, turnStep } from './turn';
import type { Ticket, WaitRoom } from './waitRoom';
import type { Cancel } from './cancel';

/** A turn held in a wait room: the room and the request's ticket in it. */
export interface Held {
  room: WaitRoom;
  ticket: Ticket;
}

/** One request's turn in the wait rooms: turnStep (turn.ts) decides, this does what it names on the room. */
export class RoomTurn {
  private turn: Turn<Held> = NO_TURN;

  constructor(
    /** The wait room of the provider the request is at now. */
    private readonly room: () => WaitRoom,
    private readonly client: string,
    private readonly waitUntil: number,
    private readonly signal: Cancel | undefined,
    /** The error a wait that ended without a turn fails the request with. */
    private readonly waitFailed: (err: unknown) => Error,
  ) {}

  /**
   * Moves the turn on by `event` and does what it names. The one action that waits, if any, is
   * returned; `counted`: the served count a used turn waits for.
   */
  follow(event: TurnEvent<Held>, counted?: Promise<void>): Promise<void> | undefined {
    const next = turnStep(this.turn, event);
    this.turn = next.turn;
    let waits: Promise<void> | undefined;
    for (const act of next.actions) {
      switch (act.kind) {
        case 'admit': {
          const admitted = this.room().admit();
          if (admitted !== true) waits = admitted.then((go) => (go ? undefined : this.join(undefined)));
          break;
        }
        case 'slow_start':
          this.room().slowStart();
          break;
        case 'kick':
          this.room().kick();
          break;
        case 'finished':
          act.through.room.finished(act.feedback);
          break;
        case 'leave':
          act.held.room.leave(act.held.ticket);
          break;
        case 'use':
          waits = (counted ?? Promise.resolve()).then(() => act.held.room.picked(act.held.ticket));
          break;
        case 'join':
          waits = this.join(act.retryAt);
          break;
        case 'retry':
          waits = act.held.room.retry(act.held.ticket, act.retryAt).catch((err) => this.ended(err));
          break;
      }
    }
    return waits;
  }

  /** Queues in the room's line; the turn is held once it comes. */
  private join(retryAt: number | undefined): Promise<void> {
    const room = this.room();
    return room.join(this.client, this.waitUntil, retryAt, this.signal).then(
      (ticket) => void (this.turn = turnStep(this.turn, { kind: 'joined', held: { room, ticket } }).turn),
      (err) => this.ended(err),
    );
  }

  private ended(err: unknown): never {
    this.turn = turnStep(this.turn, { kind: 'wait_ended' }).turn;
    throw this.waitFailed(err);
  }
}
